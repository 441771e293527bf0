import RecurdNumerics

/// The optimiser's state in a checkpoint (DESIGN §2: an `optim.` prefix): Adam's moments as
/// `optim.exp_avg.<tensor>` and `optim.exp_avg_sq.<tensor>` (PyTorch's names), the update count
/// and rule in the metadata (`optim.step`, `optim.kind`).
public enum OptimizerCheckpoint {
    /// Tensors and metadata describing `optimizer` for a model in `layout`.
    public static func encode(_ optimizer: Optimizer, layout: ParameterLayout) -> (extras: [String: (shape: [Int], values: [Float])], metadata: [String: String]) {
        var extras: [String: (shape: [Int], values: [Float])] = [:]
        if optimizer.kind == .adam {
            for slot in layout.slots {
                extras["optim.exp_avg.\(slot.name)"] = (slot.shape, (0..<slot.count).map { optimizer.firstMoment.pointer[slot.storageIndex($0)] })
                extras["optim.exp_avg_sq.\(slot.name)"] = (slot.shape, (0..<slot.count).map { optimizer.secondMoment.pointer[slot.storageIndex($0)] })
            }
        }
        return (extras, ["optim.step": "\(optimizer.step)", "optim.kind": optimizer.kind.rawValue])
    }

    /// Restores `optimizer` from a loaded file, when the file has state for the same rule.
    /// Returns false (leaving the optimiser fresh) when it has none or another rule's.
    @discardableResult
    public static func restore(_ optimizer: Optimizer, from file: ModelFile) -> Bool {
        guard file.metadata["optim.kind"] == optimizer.kind.rawValue, let step = file.metadata["optim.step"].flatMap(Int.init) else { return false }
        let layout = file.model.layout
        var first = [Float](repeating: 0, count: layout.count), second = first
        if optimizer.kind == .adam {
            for slot in layout.slots {
                guard let m = file.extras["optim.exp_avg.\(slot.name)"], let v = file.extras["optim.exp_avg_sq.\(slot.name)"],
                      m.values.count == slot.count, v.values.count == slot.count else { return false }
                for i in 0..<slot.count {
                    first[slot.storageIndex(i)] = m.values[i]
                    second[slot.storageIndex(i)] = v.values[i]
                }
            }
            optimizer.restore(step: step, first: first, second: second)
        } else {
            optimizer.restore(step: step, first: [], second: [])
        }
        return true
    }
}
