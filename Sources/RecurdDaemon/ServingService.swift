import Foundation
import Logging
import ServiceLifecycle
import ZeroMQ

/// Runs the serving loop on a thread of its own (it blocks in `zmq_poll`, which must never
/// happen on the cooperative pool).
struct ServingService: Service {
    /// The loop, handed to the thread that will own it.
    let loop: LoopBox
    let logger: Logger
    let ready: ReadySignal

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        let context = try ZMQContext(ioThreads: loop.value.ioThreads)
                        let endpoints = try loop.value.bind(context: context)
                        logger.notice("serving", metadata: [
                            "input": "\(endpoints.boundInputs.joined(separator: ","))", "output": "\(endpoints.boundOutput)",
                            "control": "\(endpoints.boundControl ?? "off")", "zmq": "\(ZMQContext.libraryVersion)",
                        ])
                        ready.serving(ReadyInfo(inputs: endpoints.boundInputs, output: endpoints.boundOutput, control: endpoints.boundControl, httpPort: nil))
                        loop.value.serve(endpoints)
                        // Flush the last predictions before the process is allowed to exit.
                        context.terminate()
                        done.resume()
                    } catch {
                        loop.value.worker.stop()
                        ready.fail(DaemonError("\(error)"))
                        done.resume(throwing: DaemonError("\(error)"))
                    }
                }
                thread.name = "recurd-serving"
                thread.start()
            }
        } onGracefulShutdown: {
            loop.value.handle.requestStop()
        }
    }
}
