import RecurdForecast
import RecurdNumerics

/// Where each part of a stream's record lives: a fixed-size core block (sequence bookkeeping,
/// recurrent state, last prediction, standardiser) and, for streams that learn, a window block
/// laid out by `WindowLayout`. Every stream of a daemon has the same layout.
///
/// ```
/// core  0  next seq (u64)          8  steps (u64)        16 loss sum (f64)     24 loss count (u64)
///      32  created (f64, Unix s)  40  last seen (f64)    48 flags (u32)        52 reserved (u32)
///      56  standardiser count (f64)
///      64  state (stateSize f32)  · last prediction's logits (O f32)
///          · standardiser mean and M2 (In f64 each, feature streams that standardise)
///          · last published forecast (O f32, forecasting streams that combine or score)
///          · combiner states (In × `ForecastCombiner.stateSize` f64, when combining)
///          · anomaly: alerts (f64), then scorer states (`AnomalyScorer.stateSize` f64 each: one
///            per feature for forecasting streams, else one over the progressive loss)
///          · text context model (`TextContextModel`, byte streams with next-byte targets)
/// ```
public struct StreamRecordLayout: Sendable, Equatable {
    public let architecture: ModelArchitecture
    /// nil: no learning window (the daemon never learns).
    public let window: WindowLayout?
    /// The next step's input is the target of each step.
    public let nextStepTargets: Bool
    /// Feature streams are standardised per stream (`RunningStandardizer`).
    public let standardize: Bool

    static let headerBytes = 64
    public let stateOffset: Int
    public let logitsOffset: Int
    public let meanOffset: Int
    public let m2Offset: Int
    /// Bytes of the core block.
    public let coreBytes: Int
    /// Floats per input the standardiser tracks (0 when it is off).
    public let standardizedInputs: Int
    /// The stream forecasts its own next input (features, linear head, outputs = inputs, next-step
    /// targets): what the combiner and the value-based anomaly score need.
    public let forecasting: Bool
    /// The published forecast is the combiner's.
    public let combine: Bool
    /// Anomaly scorers per stream: one per feature when forecasting, one over the progressive loss
    /// otherwise, 0 when scores are off.
    public let anomalyScorers: Int
    public let publishedOffset: Int
    /// Floats of the last published forecast kept (O, or 0).
    public let publishedCount: Int
    public let combinerOffset: Int
    public let anomalyOffset: Int
    /// Buckets of the text context model (0: none).
    public let textBuckets: Int
    public let textOffset: Int

    /// The layout for a model; `learning` nil when the stream never learns. Next-step targets and
    /// standardisation apply only where the model allows them (as `recurd fit` requires).
    public init(architecture a: ModelArchitecture, learning: LearningConfiguration?, nextStepTargets: Bool, standardize: Bool,
                forecast: ForecastOptions = ForecastOptions()) {
        architecture = a
        let nextAllowed = OnlineLearner.nextStepProblem(a) == nil
        let implied = nextStepTargets && nextAllowed
        self.nextStepTargets = implied
        let tokenInput: Bool = if case .tokens = a.input { true } else { false }
        // Only with next-step targets: explicit targets are not the input's units, and would be
        // scaled by the input's statistics (by 1e6 on a stream's first step).
        self.standardize = standardize && !tokenInput && a.head == .linear && implied
        window = learning.map { WindowLayout(architecture: a, k1: $0.k1, k2: $0.k2, impliedTargets: implied) }
        stateOffset = Self.headerBytes
        logitsOffset = stateOffset + a.stateSize * 4
        let afterLogits = logitsOffset + a.outputSize * 4
        meanOffset = (afterLogits + 7) & ~7
        standardizedInputs = self.standardize ? a.input.layerInputSize : 0
        m2Offset = meanOffset + standardizedInputs * 8
        let inputSize = a.input.layerInputSize
        forecasting = !tokenInput && implied && a.head == .linear && a.outputSize == inputSize
        combine = forecast.combine && forecasting
        anomalyScorers = forecast.anomalyScores ? (forecasting ? inputSize : 1) : 0
        publishedCount = forecasting && (combine || anomalyScorers > 0) ? a.outputSize : 0
        publishedOffset = m2Offset + standardizedInputs * 8
        combinerOffset = (publishedOffset + publishedCount * 4 + 7) & ~7
        anomalyOffset = combinerOffset + (combine ? inputSize * ForecastCombiner.stateSize * 8 : 0)
        textOffset = (anomalyOffset + Self.anomalySectionBytes(scorers: anomalyScorers) + 15) & ~15
        let byteStream: Bool = if case .tokens(256, _) = a.input { implied && a.head == .softmax && a.outputSize == 256 } else { false }
        textBuckets = byteStream ? TextContextModel.buckets(fitting: forecast.textContextBytes) : 0
        let end = textOffset + Self.textSectionBytes(buckets: textBuckets)
        coreBytes = (end + 15) & ~15
    }

    /// Bytes of the forecast section (published forecast and combiner states).
    public var forecastBytes: Int { anomalyOffset - publishedOffset }
    /// Bytes of the anomaly section (alert count and scorer states).
    public var anomalyBytes: Int { Self.anomalySectionBytes(scorers: anomalyScorers) }
    /// Bytes of the text context section.
    public var textBytes: Int { Self.textSectionBytes(buckets: textBuckets) }

    private static func anomalySectionBytes(scorers: Int) -> Int { scorers > 0 ? (1 + scorers * AnomalyScorer.stateSize) * 8 : 0 }
    private static func textSectionBytes(buckets: Int) -> Int { buckets > 0 ? TextContextModel.bytes(buckets: buckets) : 0 }

    /// A digest of what the core block's meaning depends on: records written under another
    /// fingerprint do not belong to this model.
    public var fingerprint: UInt64 {
        var h = KeyGroup.Hasher()
        let a = architecture
        h.add(a.cell.rawValue)
        h.add(a.input.name)
        h.add(UInt64(a.input.layerInputSize))
        if case .tokens(let v, _) = a.input { h.add(UInt64(v)) }
        for n in a.hidden { h.add(UInt64(n)) }
        h.add(UInt64(a.outputSize))
        h.add(a.head.rawValue)
        h.add(UInt64(standardizedInputs))
        return h.value
    }
}
