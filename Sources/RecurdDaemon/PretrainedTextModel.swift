import CRecurdTextModel
import RecurdModelFile

/// The byte model the daemon starts a text stream's created model from: compiled into the binary,
/// so it is there wherever the binary is. Its provenance is in Models/README.md.
enum PretrainedTextModel {
    /// The bundled model file, decoded (it is checked like any model file).
    static func load() throws(ModelFileError) -> ModelFile {
        let size = recurd_text_model_size()
        let bytes = Array(UnsafeBufferPointer(start: recurd_text_model_bytes(), count: size))
        return try ModelFile.decode(bytes, file: "<bundled text model>")
    }
}
