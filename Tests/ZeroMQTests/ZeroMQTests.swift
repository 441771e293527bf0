import Foundation
import Testing
import ZeroMQ

/// The wrapper over real libzmq sockets (loopback TCP and ipc).
@Suite struct ZeroMQTests {
    @Test func pushPullMultipartOfAnySize() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.bind("tcp://127.0.0.1:*")
        let endpoint = pull.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect(endpoint)
        let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(try push.send(frames: [Array("key".utf8), big, []]))
        let parts = ZMQMultipart(capacity: 2)
        try pull.setReceiveTimeout(milliseconds: 5000)
        #expect(try parts.receive(from: pull, dontWait: false))
        // Three frames arrived; the third was consumed but not kept.
        #expect(parts.frameCount == 3)
        #expect(Array(parts.frame(0)) == Array("key".utf8))
        #expect(parts.frame(1).count == big.count)
        #expect(Array(parts.frame(1)) == big)
        // Nothing else is waiting.
        #expect(try parts.receive(from: pull, dontWait: true) == false)
    }

    @Test func pubSubPrefixOverIPC() throws {
        let context = try ZMQContext()
        let file = "/tmp/recurd-zmq-test-\(UUID().uuidString)"
        let path = "ipc://\(file)"
        // libzmq leaves the socket file when the context is not terminated before exit.
        defer { unlink(file) }
        let pub = try ZMQSocket(context: context, type: .pub)
        try pub.bind(path)
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.subscribe(Array("a.".utf8))
        try sub.connect(path)
        try sub.setReceiveTimeout(milliseconds: 200)
        // Subscriptions propagate asynchronously: publish until the first one arrives.
        var got: [[UInt8]]?
        for _ in 0..<50 where got == nil {
            try pub.send(frames: [Array("b.skip".utf8), [1]])
            try pub.send(frames: [Array("a.key".utf8), [2]])
            got = try sub.receiveFrames()
        }
        #expect(got == [Array("a.key".utf8), [2]])
    }

    /// Two bound PULL sockets, and a PUSH connected to the second (the poller tests' setup).
    func twoPullsAndAPushToTheSecond() throws -> (ZMQSocket, ZMQSocket, ZMQSocket) {
        let context = try ZMQContext()
        let a = try ZMQSocket(context: context, type: .pull), b = try ZMQSocket(context: context, type: .pull)
        try a.bind("tcp://127.0.0.1:*"); try b.bind("tcp://127.0.0.1:*")
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect(b.lastEndpoint)
        return (a, b, push)   // each socket keeps the context alive
    }

    /// The notification poller's contract: once a socket was read to empty, a new message makes
    /// its descriptor readable (within the wait), a socket nothing reached stays quiet, and reading
    /// to empty again quiets the descriptor.
    @Test func notificationDescriptorsSignalNewInputAfterAnEmptyRead() throws {
        let (a, b, push) = try twoPullsAndAPushToTheSecond()
        let parts = ZMQMultipart(capacity: 1)
        let poller = try ZMQNotificationPoller([a, b])
        // Settle the connection (a message through it: it is then up, however slow the machine),
        // then read both to empty: from here on their descriptors only fire on news.
        try push.send(frames: [[0xFF]])
        var settled = false
        for _ in 0..<200 where !settled { settled = try parts.receive(from: b, dontWait: true); if !settled { usleep(10_000) } }
        #expect(settled, "the connection never came up")
        for s in [a, b] { while try parts.receive(from: s, dontWait: true) {} }
        var ready = [true, true]
        try poller.poll(timeoutMilliseconds: 20, into: &ready)
        #expect(ready == [false, false])
        for round in 0..<3 {
            try push.send(frames: [[UInt8(round)]])
            ready = [false, false]
            for _ in 0..<40 where !ready[1] { try poller.poll(timeoutMilliseconds: 50, into: &ready) }
            #expect(ready == [false, true], "round \(round)")
            #expect(try parts.receive(from: b, dontWait: true))
            #expect(Array(parts.frame(0)) == [UInt8(round)])
            #expect(try parts.receive(from: b, dontWait: true) == false)
            try poller.poll(timeoutMilliseconds: 20, into: &ready)
            #expect(ready == [false, false], "round \(round): quiet after the empty read")
        }
    }

    @Test func pollerReportsReadableSockets() throws {
        let (a, b, push) = try twoPullsAndAPushToTheSecond()
        let poller = ZMQPoller([a, b])
        #expect(try poller.poll(timeoutMilliseconds: 10) == [false, false])
        try push.send(frames: [[7]])
        var ready = [false, false]
        for _ in 0..<100 where !ready[1] { ready = try poller.poll(timeoutMilliseconds: 50) }
        #expect(ready == [false, true])
    }

    @Test func requestReplyAndOptions() throws {
        let context = try ZMQContext()
        let rep = try ZMQSocket(context: context, type: .rep)
        try rep.setMaxMessageSize(1024)
        try rep.setHeartbeat(intervalMilliseconds: 1000, timeoutMilliseconds: 3000)
        try rep.setSendHighWaterMark(10); try rep.setReceiveHighWaterMark(10)
        try rep.bind("tcp://127.0.0.1:*")
        let req = try ZMQSocket(context: context, type: .req)
        try req.connect(rep.lastEndpoint)
        try req.setReceiveTimeout(milliseconds: 5000); try rep.setReceiveTimeout(milliseconds: 5000)
        try req.send(frames: [Array("ping".utf8)])
        #expect(try rep.receiveFrames() == [Array("ping".utf8)])
        try rep.send(frames: [Array("pong".utf8)])
        #expect(try req.receiveFrames() == [Array("pong".utf8)])
    }

    @Test func errorsNameTheOperation() throws {
        let context = try ZMQContext()
        let s = try ZMQSocket(context: context, type: .pull)
        #expect(throws: ZMQError.self) { try s.bind("nonsense://x") }
        do { try s.bind("tcp://256.1.1.1:1") } catch { #expect(error.description.hasPrefix("bind tcp://256.1.1.1:1: ")) }
        s.close()
        #expect(throws: ZMQError.self) { try s.connect("tcp://127.0.0.1:1") }
    }
}
