/// What a stream publishes beyond the network's own prediction (DESIGN §3.7, §4).
public struct ForecastOptions: Sendable, Equatable {
    /// Feature streams that forecast their next input publish an online combination of the
    /// network's forecast with simple forecasters (`ForecastCombiner`), and their progressive loss
    /// is that combination's.
    public var combine: Bool
    /// Every output carries a per-step anomaly score (`AnomalyScorer`).
    public var anomalyScores: Bool
    /// Bytes of each text stream's context model (`TextContextModel`); 0: the network's
    /// distribution is published as it is.
    public var textContextBytes: Int

    public init(combine: Bool = false, anomalyScores: Bool = false, textContextBytes: Int = 0) {
        self.combine = combine
        self.anomalyScores = anomalyScores
        self.textContextBytes = textContextBytes
    }
}
