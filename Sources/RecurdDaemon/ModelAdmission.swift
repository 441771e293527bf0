import RecurdNumerics
import RecurdWire

/// Whether the model can take a decoded message: input kind and size, token range, targets.
/// Refusals use the wire error reasons so they are counted like malformed messages.
enum ModelAdmission {
    static func check(_ m: InputHeader, _ arena: InputArena, architecture a: ModelArchitecture) throws(WireError) {
        // A zero-step RESET or END carries no values: whatever its kind and xdim, it fits.
        guard m.steps > 0 else { return }
        switch (m.inputKind, a.input) {
        case (.features, .features(let size)):
            guard m.xdim == size else { throw WireError(.dimension, "xdim \(m.xdim) but the model takes \(size) features per step") }
        case (.token, .tokens(let vocabulary, _)), (.text, .tokens(let vocabulary, _)):
            for i in 0..<m.steps where Int(arena.tokens[m.tokenOffset + i]) >= vocabulary {
                throw WireError(.token, "token \(arena.tokens[m.tokenOffset + i]) at step \(i) is outside the model's vocabulary of \(vocabulary)")
            }
        case (.features, .tokens):
            throw WireError(.kind, "f32 vector input but the model takes tokens")
        case (.token, .features), (.text, .features):
            throw WireError(.kind, "\(m.inputKind == .text ? "text" : "token") input but the model takes \(a.input.layerInputSize) features per step")
        }
        switch m.targetKind {
        case .none: break
        case .values:
            guard a.head != .softmax else { throw WireError(.target, "f32 vector targets but the model's head is softmax (send class ids)") }
            guard m.ydim == a.outputSize else { throw WireError(.target, "ydim \(m.ydim) but the model has \(a.outputSize) outputs") }
        case .classIndex:
            guard a.head == .softmax else { throw WireError(.target, "class targets but the model's head is \(a.head.rawValue) (send f32 vectors)") }
            for i in 0..<m.steps where Int(arena.targetClasses[m.targetClassOffset + i]) >= a.outputSize {
                throw WireError(.target, "class \(arena.targetClasses[m.targetClassOffset + i]) at step \(i) is outside the model's \(a.outputSize) classes")
            }
        }
    }
}
