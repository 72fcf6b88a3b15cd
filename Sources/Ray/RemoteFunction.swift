import RayCommon
import RayCoreWorker
import RayProtos

/// A remote function of any signature, as an application lists them (``RayApplication/remoteFunctions``)
/// so that its workers can run them by name.
public protocol AnyRemoteFunction: Sendable {
    /// The stable name tasks carry; unique in the executable.
    var name: String { get }
    /// Decodes arguments, runs the function, encodes its result (used by workers).
    var _body: TaskFunction { get }
}

/// A function that runs as a task on a worker of the cluster. `remote(...)` submits it and returns an
/// `ObjectRef` to its result at once; each argument is a value or an `ObjectRef` to one (the task
/// runs once it exists and receives the value). The compiler checks every call's types.
///
/// ```swift
/// let square = RemoteFunction("square") { (x: Int) in x * x }
/// let ref = square.remote(4)          // ObjectRef<Int>
/// let chained = square.remote(ref)    // takes the first result
/// ```
public struct RemoteFunction<Args, Result: Codable & Sendable>: AnyRemoteFunction, RemoteFunctionOptions {
    public let name: String
    /// Resources each task holds while it runs (default one CPU), and how many values it returns.
    public var taskOptions: TaskOptions
    public let _body: TaskFunction

    @usableFromInline
    init(name: String, options: TaskOptions, body: @escaping TaskFunction) {
        self.name = name
        self.taskOptions = options
        self._body = body
    }

    @inlinable
    func submit(_ arguments: [TaskArgument]) -> ObjectRef<Result> {
        let worker = Ray.requireWorker()
        let ids = worker.submitTask(name, arguments: arguments, options: taskOptions)
        return ObjectRef(adopting: ids[0], worker: worker)
    }
}

/// What every kind of remote function shares: its task options, and `options(...)`, which returns a
/// copy with some of them changed (Ray's `.options(...)`).
public protocol RemoteFunctionOptions {
    /// Resources each task holds while it runs (default one CPU), where it may run, how many values it returns.
    var taskOptions: TaskOptions { get set }
}

extension RemoteFunctionOptions {
    /// A copy with other resource requests (Ray's `.options(num_cpus=..., resources=...)`).
    /// `numCPUs` may be fractional; `resources` names custom resources.
    public func options(numCPUs: Double? = nil, resources: [String: Double]? = nil) -> Self {
        var copy = self
        copy.taskOptions = taskOptions.with(numCPUs: numCPUs, resources: resources)
        return copy
    }

    /// A copy with other resources and a place to run: a scheduling strategy and Ray 2.60's label
    /// selector (label key to `"value"`, `"!value"`, `"in(a,b)"` or `"!in(a,b)"`).
    public func options(numCPUs: Double? = nil, resources: [String: Double]? = nil, scheduling: SchedulingStrategy,
                        labelSelector: [String: String] = [:]) -> Self {
        var copy = options(numCPUs: numCPUs, resources: resources)
        copy.taskOptions.schedulingStrategy = scheduling.proto
        copy.taskOptions.labelSelector = labelSelector
        return copy
    }

    /// A copy that runs only on nodes whose labels match (Ray 2.60's `label_selector`).
    public func options(numCPUs: Double? = nil, resources: [String: Double]? = nil, labelSelector: [String: String]) -> Self {
        var copy = options(numCPUs: numCPUs, resources: resources)
        copy.taskOptions.labelSelector = labelSelector
        return copy
    }
}

extension TaskOptions {
    /// These options with other resources: `resources` replaces the custom ones (the CPU count stays
    /// unless `numCPUs` is given); zero amounts are dropped.
    func with(numCPUs: Double?, resources: [String: Double]?) -> TaskOptions {
        var copy = self
        if let resources { copy.resources = resources.merging(["CPU": self.resources["CPU"] ?? 1]) { custom, _ in custom } }
        if let numCPUs { copy.resources["CPU"] = numCPUs }
        copy.resources = copy.resources.filter { $0.value != 0 }
        return copy
    }
}

// MARK: encoding helpers

@inlinable
func encodeArgument<T: Encodable>(_ value: T, function: String, index: Int) -> TaskArgument {
    do {
        let references = ReferenceCollector()
        let bytes = try ReferenceTracking.$encoding.withValue(references) { try BinaryEncoder().encode(value) }
        let contained = references.collected
        return contained.isEmpty ? .value(bytes) : .value(bytes, containing: contained)
    } catch {
        // Only a type's own encode(to:) throws here: the task fails with that, nothing is sent.
        return .unencodable("argument \(index) of \(function) (\(T.self)) does not encode: \(error)")
    }
}

@inlinable
func decodeArgument<T: Decodable>(_ type: T.Type, _ arguments: [ArgumentValue], _ index: Int, function: String) throws -> T {
    guard index < arguments.count else {
        throw RayError(.serialization, "\(function) takes \(index + 1) or more arguments, the task carried \(arguments.count)")
    }
    do {
        return try arguments[index].withBytes { try BinaryDecoder().decode(T.self, from: $0) }
    } catch {
        throw RayError(.serialization, "argument \(index + 1) of \(function) does not decode as \(T.self): \(error)")
    }
}

@inlinable
func encodeResult<T: Encodable>(_ value: T, function: String) throws -> [EncodedResult] {
    do {
        return [try EncodedResult(value)]
    } catch {
        throw RayError(.serialization, "the result of \(function) (\(T.self)) does not encode: \(error)")
    }
}

@usableFromInline
func checkArity(_ arguments: [ArgumentValue], _ count: Int, function: String) throws {
    guard arguments.count == count else {
        throw RayError(.serialization, "\(function) takes \(count) arguments, the task carried \(arguments.count)")
    }
}

// MARK: no arguments

extension RemoteFunction where Args == Void {
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () async throws -> Result) {
        self.init(name: name, options: TaskOptions()) { arguments in
            try checkArity(arguments, 0, function: name)
            return try encodeResult(try await body(), function: name)
        }
    }

    @inlinable
    public func remote() -> ObjectRef<Result> { submit([]) }
}

// MARK: one argument

extension RemoteFunction where Args: Codable & Sendable {
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Args) async throws -> Result) {
        self.init(name: name, options: TaskOptions()) { arguments in
            try checkArity(arguments, 1, function: name)
            let a = try decodeArgument(Args.self, arguments, 0, function: name)
            return try encodeResult(try await body(a), function: name)
        }
    }

    @inlinable
    public func remote(_ a: Args) -> ObjectRef<Result> { submit([encodeArgument(a, function: name, index: 1)]) }
    @inlinable
    public func remote(_ a: ObjectRef<Args>) -> ObjectRef<Result> { submit([a.argument]) }
}

// MARK: two arguments

extension RemoteFunction {
    @inlinable
    public init<A: Codable & Sendable, B: Codable & Sendable>(
        _ name: String, _ body: @escaping @Sendable (A, B) async throws -> Result
    ) where Args == (A, B) {
        self.init(name: name, options: TaskOptions()) { arguments in
            try checkArity(arguments, 2, function: name)
            let a = try decodeArgument(A.self, arguments, 0, function: name)
            let b = try decodeArgument(B.self, arguments, 1, function: name)
            return try encodeResult(try await body(a, b), function: name)
        }
    }

    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable>(_ a: A, _ b: B) -> ObjectRef<Result> where Args == (A, B) {
        submit([encodeArgument(a, function: name, index: 1), encodeArgument(b, function: name, index: 2)])
    }
    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable>(_ a: ObjectRef<A>, _ b: B) -> ObjectRef<Result> where Args == (A, B) {
        submit([a.argument, encodeArgument(b, function: name, index: 2)])
    }
    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable>(_ a: A, _ b: ObjectRef<B>) -> ObjectRef<Result> where Args == (A, B) {
        submit([encodeArgument(a, function: name, index: 1), b.argument])
    }
    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable>(_ a: ObjectRef<A>, _ b: ObjectRef<B>) -> ObjectRef<Result> where Args == (A, B) {
        submit([a.argument, b.argument])
    }
}

// MARK: three arguments

extension RemoteFunction {
    @inlinable
    public init<A: Codable & Sendable, B: Codable & Sendable, C: Codable & Sendable>(
        _ name: String, _ body: @escaping @Sendable (A, B, C) async throws -> Result
    ) where Args == (A, B, C) {
        self.init(name: name, options: TaskOptions()) { arguments in
            try checkArity(arguments, 3, function: name)
            let a = try decodeArgument(A.self, arguments, 0, function: name)
            let b = try decodeArgument(B.self, arguments, 1, function: name)
            let c = try decodeArgument(C.self, arguments, 2, function: name)
            return try encodeResult(try await body(a, b, c), function: name)
        }
    }

    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable, C: Codable & Sendable>(_ a: A, _ b: B, _ c: C) -> ObjectRef<Result> where Args == (A, B, C) {
        submit([encodeArgument(a, function: name, index: 1), encodeArgument(b, function: name, index: 2),
                encodeArgument(c, function: name, index: 3)])
    }
    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable, C: Codable & Sendable>(_ a: ObjectRef<A>, _ b: B, _ c: C) -> ObjectRef<Result> where Args == (A, B, C) {
        submit([a.argument, encodeArgument(b, function: name, index: 2), encodeArgument(c, function: name, index: 3)])
    }
    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable, C: Codable & Sendable>(_ a: ObjectRef<A>, _ b: ObjectRef<B>, _ c: C) -> ObjectRef<Result> where Args == (A, B, C) {
        submit([a.argument, b.argument, encodeArgument(c, function: name, index: 3)])
    }
    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable, C: Codable & Sendable>(_ a: ObjectRef<A>, _ b: ObjectRef<B>, _ c: ObjectRef<C>) -> ObjectRef<Result>
    where Args == (A, B, C) {
        submit([a.argument, b.argument, c.argument])
    }
}
