import RecurdNumerics
import RecurdWire

/// Encodes a run of one message's predictions (DESIGN §4 output, binary or JSON, full vectors
/// or top-k) and hands it to the output. Reuses its buffers: publishing allocates nothing once
/// they have grown. Serving thread only.
final class Publisher {
    let sink: any OutputSink
    private let prefix: [UInt8]
    private let format: ServeConfiguration.OutputFormat
    private let outputs: Int
    private let softmax: Bool
    /// Softmax heads: classes published per step (0: the whole vector).
    var topK: Int
    private var payload: [UInt8] = []
    private var topic: [UInt8] = []
    private var topIds: [UInt32] = []
    private var topValues: [Float] = []

    /// Why `a`'s outputs cannot be published with `topK`, or nil: an output message's odim is a
    /// u16 (DESIGN §4), so a step publishes at most 65,535 values.
    static func widthProblem(_ a: ModelArchitecture, topK: Int) -> String? {
        let odim = a.head == .softmax && topK > 0 ? min(topK, a.outputSize) : a.outputSize
        guard odim > 65_535 else { return nil }
        let fix = a.head == .softmax ? "serve it with top-k K (K ≤ 65535)" : "give it at most 65535 outputs"
        return "the model has \(a.outputSize) outputs, more than an output message's odim (u16) can carry: \(fix)"
    }

    init(sink: any OutputSink, configuration c: ServeConfiguration, architecture a: ModelArchitecture) {
        self.sink = sink
        prefix = Array(c.outputPrefix.utf8)
        format = c.outputFormat
        outputs = a.outputSize
        softmax = a.head == .softmax
        topK = c.topK
    }

    /// Publishes `steps` predictions (`values`: steps × outputs), their losses and (scores on)
    /// their anomaly scores for the stream `key`; returns whether the output took the message.
    func publish(key: UnsafeRawBufferPointer, flags: OutputFlags, steps n: Int, modelVersion: UInt32, seq: UInt64, timestamp: Int64,
                 values: UnsafePointer<Float>, losses: UnsafePointer<Float>, anomaly: UnsafePointer<Float>? = nil) -> Bool {
        let k = softmax && topK > 0 ? min(topK, outputs) : 0
        let kind: WireOutputKind = k > 0 ? .topK : .vector
        let odim = k > 0 ? k : outputs
        if k > 0 { selectTop(values, steps: n, k: k) }
        topValues.withUnsafeBufferPointer { tv in
            topIds.withUnsafeBufferPointer { ti in
                let v = k > 0 ? tv.baseAddress! : values
                let ids = k > 0 ? ti.baseAddress : nil
                switch format {
                case .binary:
                    OutputCodec.encodeBinary(into: &payload, kind: kind, flags: flags, odim: odim, steps: n, modelVersion: modelVersion, seq: seq,
                                             timestamp: timestamp, values: v, ids: ids, losses: losses, anomaly: anomaly)
                case .json:
                    OutputCodec.encodeJSON(into: &payload, kind: kind, flags: flags, odim: odim, steps: n, modelVersion: modelVersion, seq: seq,
                                           timestamp: timestamp, values: v, ids: ids, losses: losses, anomaly: anomaly)
                }
            }
        }
        topic.removeAll(keepingCapacity: true)
        topic.append(contentsOf: prefix)
        topic.append(contentsOf: key)
        return sink.send(topic: topic, payload: payload)
    }

    /// The k most probable classes of each step, most probable first, kept sorted by insertion
    /// straight into the output arrays (no per-step allocation).
    private func selectTop(_ values: UnsafePointer<Float>, steps n: Int, k: Int) {
        topIds.removeAll(keepingCapacity: true)
        topValues.removeAll(keepingCapacity: true)
        for s in 0..<n {
            let base = s * outputs, start = s * k
            for j in 0..<outputs {
                let v = values[base + j]
                let filled = topValues.count - start
                if filled == k && v <= topValues[start + k - 1] { continue }
                var at = start + min(filled, k - 1)
                if filled < k { topIds.append(0); topValues.append(0) }
                while at > start && topValues[at - 1] < v {
                    topIds[at] = topIds[at - 1]
                    topValues[at] = topValues[at - 1]
                    at -= 1
                }
                topIds[at] = UInt32(j)
                topValues[at] = v
            }
        }
    }
}
