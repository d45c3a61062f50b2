/// What a connection handler (HTTP/2 or HTTP/1.1) tells the pool about its connection, in the
/// order listeners rely on: the connection stops taking requests before anyone hears that it is
/// going, and the closing signal fires before the delegate hears of the drain, so that a caller
/// holding a response learns of it before its stream is torn down.
struct ConnectionReporter: Sendable {
    let id: SubconnectionID
    let address: ResolvedAddress
    let shared: SubconnectionShared
    let delegate: any SubconnectionDelegate

    /// Ready: it takes requests from now on.
    func ready() {
        shared.isAvailable.store(true, ordering: .releasing)
        delegate.subconnection(id, address: address, didReport: .ready)
    }

    /// Going away: no new requests; the open ones may finish.
    func draining(_ reason: ConnectionCloseReason) {
        shared.isAvailable.store(false, ordering: .releasing)
        shared.closing.fire(reason)
        delegate.subconnection(id, address: address, didReport: .draining(reason))
    }

    /// Closed.
    func closed(_ reason: ConnectionCloseReason, wasReady: Bool) {
        shared.isAvailable.store(false, ordering: .releasing)
        shared.closing.fire(reason)
        delegate.subconnection(id, address: address, didReport: .closed(reason, wasReady: wasReady))
    }
}
