#ifndef RECURD_TEXT_MODEL_H
#define RECURD_TEXT_MODEL_H
#include <stddef.h>

/// The bundled pre-trained byte model: a recurd/1 safetensors file compiled into the binary
/// (Models/pretrain_text.py writes text_model.c from Models/text-default.safetensors).
const unsigned char *recurd_text_model_bytes(void);
size_t recurd_text_model_size(void);

#endif
