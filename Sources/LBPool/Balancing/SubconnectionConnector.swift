/// How the balancer brings a subconnection to life and asks it to go: over sockets in
/// production (``SocketConnector``), scripted in a unit test of the balancer.
protocol SubconnectionConnector: Sendable {
    /// Dials and serves `subconnection` until it closes, reporting each change to `delegate`;
    /// cancelling the calling task closes it.
    func run(_ subconnection: Subconnection, delegate: any SubconnectionDelegate) async
    /// Stops new streams on `subconnection`; it closes when its open streams end.
    func drain(_ subconnection: Subconnection, _ reason: ConnectionCloseReason)
}

/// Subconnections dialled with SwiftNIO.
struct SocketConnector: SubconnectionConnector {
    let settings: ConnectionSettings

    func run(_ subconnection: Subconnection, delegate: any SubconnectionDelegate) async {
        await subconnection.run(settings: settings, delegate: delegate)
    }

    func drain(_ subconnection: Subconnection, _ reason: ConnectionCloseReason) {
        subconnection.drain(reason)
    }
}
