/// A target or configuration value the pool cannot work with. The message names the setting
/// and the value.
public struct LBPoolConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The setting, e.g. `"target"`, `"minConnections"`, `"dns.tries"`.
    public var setting: String
    /// The bad value as given.
    public var value: String
    /// What is wrong with it.
    public var reason: String

    public init(setting: String, value: String, reason: String) {
        self.setting = setting
        self.value = value
        self.reason = reason
    }

    public var description: String {
        "invalid \(setting) '\(value)': \(reason)"
    }
}

enum Validate {
    static func positive(_ duration: Duration, _ setting: String) throws(LBPoolConfigurationError) {
        guard duration > .zero else {
            throw LBPoolConfigurationError(setting: setting, value: "\(duration)", reason: "must be greater than zero")
        }
    }
}
