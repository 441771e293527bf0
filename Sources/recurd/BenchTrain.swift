import ArgumentParser
import Foundation
import RecurdNumerics

/// `recurd bench train`: the background trainer's capacity. Batched TBPTT updates (DESIGN §3.3)
/// of `--windows` full windows of random next-step data, as the daemon's trainer runs them
/// (`Trainer.update`: forward, backward, clipping, Adam), timed together; reports windows/s.
/// The default model is the load benchmark's (LSTM input 8, hidden 64, linear head 8), so the
/// figure says how many due windows per second the trainer can take at that load.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "The background trainer's capacity: batched TBPTT updates of full windows, windows per second."
    )

    @Option(help: "Model file (default: a new model from the flags below).") var model: String?
    @Option(help: "lstm or gru.") var cell: CellKind = .lstm
    @Option(help: "Hidden sizes.") var hidden: String = "64"
    @Option(name: .customLong("input-size"), parsing: .unconditional) var inputSize: Int = 8
    @Option(parsing: .unconditional, help: "Windows per update (the daemon's --train-batch).") var windows: Int = 32
    @Option(parsing: .unconditional) var k1: Int = 16
    @Option(parsing: .unconditional) var k2: Int = 32
    @Option(parsing: .unconditional, help: "Timed updates.") var updates: Int = 300
    @Option(parsing: .unconditional, help: "Untimed warm-up updates.") var warmup: Int = 20

    func run() throws {
        let m = try benchModel(file: model, cell: cell, hidden: hidden, inputSize: inputSize, outputSize: inputSize)
        let arch = m.architecture
        guard case .features(let n) = arch.input, arch.outputSize == n, arch.head == .linear else {
            throw CLIError("bench train takes a feature model whose output predicts its next input (linear head, outputs = inputs)")
        }
        guard windows >= 1, k1 >= 1, k2 >= 1, updates >= 1 else { throw CLIError("--windows, --k1, --k2 and --updates must be at least 1") }
        Kernels.prepare()
        let configuration = LearningConfiguration(k1: k1, k2: k2, optimizer: .adam, learningRate: 0.001, clip: 1)
        let trainer = Trainer(layout: m.layout, configuration: configuration, maxWindows: windows)
        let layout = WindowLayout(architecture: arch, k1: k1, k2: k2, impliedTargets: true)
        let memory = UnsafeMutableRawPointer.allocate(byteCount: windows * layout.byteCount, alignment: 64)
        defer { memory.deallocate() }
        var rng = SeededGenerator(seed: 3)
        let x = FloatBuffer(count: n), state = FloatBuffer(count: arch.stateSize)
        func fill() { for i in 0..<n { x.pointer[i] = Float(rng.nextUnit() * 2 - 1) } }
        let batch: [TrainingWindow] = (0..<windows).map { w in
            let window = TrainingWindow(layout: layout, base: memory + w * layout.byteCount)
            window.initialize()
            for i in 0..<arch.stateSize { state.pointer[i] = Float(rng.nextUnit() - 0.5) }
            fill()
            window.restart(features: x.pointer, token: 0)
            for _ in 0..<k2 {
                window.saveState(state.pointer)
                fill()
                window.pushTarget(features: x.pointer, token: 0)
            }
            return window
        }
        var loss = 0.0
        for _ in 0..<warmup { _ = trainer.update(windows: batch, weights: m.weights.pointer) }
        let start = nowNanoseconds()
        for _ in 0..<updates { loss = trainer.update(windows: batch, weights: m.weights.pointer) ?? .nan }
        let seconds = Double(nowNanoseconds() - start) / 1e9
        // Multiply–adds per window: the layers forward over k2 steps and twice that backward (the
        // input/recurrent gradients and the weight gradients); the head on the k1 loss steps, the
        // same three times.
        var layerMACs = 0, input = n
        for h in arch.hidden {
            layerMACs += arch.cell.gateCount * h * (input + h)
            input = h
        }
        let macs = 3 * (layerMACs * k2 + arch.outputSize * arch.topHidden * min(k1, k2))
        let trained = Double(updates * windows)
        emit([
            "bench": "train", "impl": "recurd", "cell": arch.cell.rawValue, "hidden": arch.hidden, "input": n,
            "windows": windows, "k1": k1, "k2": k2, "updates": updates,
            "us_per_window": seconds / trained * 1e6, "windows_per_second": trained / seconds,
            "gflops": 2 * Double(macs) * trained / seconds / 1e9, "loss_finite": loss.isFinite,
        ])
    }
}
