import Synchronization

/// What the daemon bound, once ready.
public struct ReadyInfo: Sendable {
    public var inputs: [String]
    public var output: String
    public var control: String?
    public var httpPort: Int?
}

/// One-shot readiness: the serving thread reports its endpoints, HTTP its port.
final class ReadySignal: Sendable {
    private struct State {
        var info: ReadyInfo?
        var failure: (any Error)?
        var httpPending: Bool
        /// Kept apart: HTTP may bind before the serving thread reports.
        var httpPort: Int?
        var waiters: [CheckedContinuation<ReadyInfo, any Error>] = []
    }
    private let state = Mutex(State(httpPending: false))

    func expectHTTP() { state.withLock { $0.httpPending = true } }

    func serving(_ info: ReadyInfo) { update { $0.info = info } }
    func http(port: Int) { update { $0.httpPending = false; $0.httpPort = port } }
    func fail(_ error: any Error) { update { $0.failure = error } }

    private func update(_ change: (inout State) -> Void) {
        let (waiters, result): ([CheckedContinuation<ReadyInfo, any Error>], Result<ReadyInfo, any Error>?) = state.withLock { s in
            change(&s)
            if let f = s.failure { defer { s.waiters = [] }; return (s.waiters, .failure(f)) }
            if var i = s.info, !s.httpPending { defer { s.waiters = [] }; i.httpPort = s.httpPort; return (s.waiters, .success(i)) }
            return ([], nil)
        }
        if let result { for w in waiters { w.resume(with: result) } }
    }

    func wait() async throws -> ReadyInfo {
        try await withCheckedThrowingContinuation { c in
            let result: Result<ReadyInfo, any Error>? = state.withLock { s in
                if let f = s.failure { return .failure(f) }
                if var i = s.info, !s.httpPending { i.httpPort = s.httpPort; return .success(i) }
                s.waiters.append(c)
                return nil
            }
            if let result { c.resume(with: result) }
        }
    }
}
