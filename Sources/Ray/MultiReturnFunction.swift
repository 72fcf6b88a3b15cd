import RayCommon
import RayCoreWorker

/// A remote function that returns several values, each its own object (Ray's `num_returns`):
///
/// ```swift
/// let divmod = MultiReturnFunction("divmod") { (a: Int, b: Int) in (a / b, a % b) }
/// let (quotient, remainder) = divmod.remote(17, 5)   // ObjectRef<Int>, ObjectRef<Int>
/// ```
public struct MultiReturnFunction<Args, each Result: Codable & Sendable>: AnyRemoteFunction, RemoteFunctionOptions {
    public let name: String
    public var taskOptions: TaskOptions
    public let _body: TaskFunction

    @usableFromInline
    init(name: String, body: @escaping TaskFunction) {
        self.name = name
        self._body = body
        var options = TaskOptions()
        options.numReturns = Self.count
        self.taskOptions = options
    }

    static var count: Int {
        var n = 0
        for _ in repeat (each Result).self { n += 1 }
        return n
    }

    @usableFromInline
    func submit(_ arguments: [TaskArgument]) -> (repeat ObjectRef<each Result>) {
        let worker = Ray.requireWorker()
        let ids = IDCursor(worker.submitTask(name, arguments: arguments, options: taskOptions))
        return (repeat ObjectRef<each Result>(adopting: ids.next(), worker: worker))
    }
}

/// Hands out a task's return IDs in order.
private final class IDCursor {
    private let ids: [ObjectID]
    private var index = 0
    init(_ ids: [ObjectID]) { self.ids = ids }
    func next() -> ObjectID {
        defer { index += 1 }
        return ids[index]
    }
}

extension MultiReturnFunction where Args: Codable & Sendable {
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Args) async throws -> (repeat each Result)) {
        self.init(name: name) { arguments in
            try checkArity(arguments, 1, function: name)
            let a = try decodeArgument(Args.self, arguments, 0, function: name)
            let values = try await body(a)
            return try encodeAll(repeat each values, function: name)
        }
    }

    @inlinable
    public func remote(_ a: Args) -> (repeat ObjectRef<each Result>) { submit([encodeArgument(a, function: name, index: 1)]) }
    @inlinable
    public func remote(_ a: ObjectRef<Args>) -> (repeat ObjectRef<each Result>) { submit([a.argument]) }
}

extension MultiReturnFunction {
    @inlinable
    public init<A: Codable & Sendable, B: Codable & Sendable>(
        _ name: String, _ body: @escaping @Sendable (A, B) async throws -> (repeat each Result)
    ) where Args == (A, B) {
        self.init(name: name) { arguments in
            try checkArity(arguments, 2, function: name)
            let a = try decodeArgument(A.self, arguments, 0, function: name)
            let b = try decodeArgument(B.self, arguments, 1, function: name)
            let values = try await body(a, b)
            return try encodeAll(repeat each values, function: name)
        }
    }

    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable>(_ a: A, _ b: B) -> (repeat ObjectRef<each Result>)
    where Args == (A, B) {
        submit([encodeArgument(a, function: name, index: 1), encodeArgument(b, function: name, index: 2)])
    }
    @inlinable
    public func remote<A: Codable & Sendable, B: Codable & Sendable>(_ a: ObjectRef<A>, _ b: B) -> (repeat ObjectRef<each Result>)
    where Args == (A, B) {
        submit([a.argument, encodeArgument(b, function: name, index: 2)])
    }
}

/// Each value encoded as its own result.
@inlinable
func encodeAll<each T: Encodable>(_ values: repeat each T, function: String) throws -> [EncodedResult] {
    var results: [EncodedResult] = []
    for value in repeat each values { results += try encodeResult(value, function: function) }
    return results
}

/// A remote function whose number of returns is chosen at each call (Ray's `num_returns=N` on a
/// function returning N values, as in Ray's `3000_returns` benchmark): the body returns an array and
/// each element becomes its own object. A task whose array has another length fails, saying so.
///
/// ```swift
/// let chunks = ManyReturnFunction("chunks") { (n: Int) in (0..<n).map { [UInt8](repeating: 1, count: $0) } }
/// let refs = chunks.remote(100, numReturns: 100)   // [ObjectRef<[UInt8]>]
/// ```
public struct ManyReturnFunction<Args, Element: Codable & Sendable>: AnyRemoteFunction, RemoteFunctionOptions {
    public let name: String
    public var taskOptions: TaskOptions
    public let _body: TaskFunction

    @usableFromInline
    init(name: String, body: @escaping TaskFunction) {
        self.name = name
        self._body = body
        self.taskOptions = TaskOptions()
    }

    @usableFromInline
    func submit(_ arguments: [TaskArgument], numReturns: Int) -> [ObjectRef<Element>] {
        precondition(numReturns >= 1, "\(name): numReturns must be at least 1, was \(numReturns)")
        let worker = Ray.requireWorker()
        var options = taskOptions
        options.numReturns = numReturns
        return worker.submitTask(name, arguments: arguments, options: options).map { ObjectRef(adopting: $0, worker: worker) }
    }
}

extension ManyReturnFunction where Args == Void {
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable () async throws -> [Element]) {
        self.init(name: name) { arguments in
            try checkArity(arguments, 0, function: name)
            return try encodeEach(try await body(), function: name)
        }
    }

    @inlinable
    public func remote(numReturns: Int) -> [ObjectRef<Element>] { submit([], numReturns: numReturns) }
}

extension ManyReturnFunction where Args: Codable & Sendable {
    @inlinable
    public init(_ name: String, _ body: @escaping @Sendable (Args) async throws -> [Element]) {
        self.init(name: name) { arguments in
            try checkArity(arguments, 1, function: name)
            let a = try decodeArgument(Args.self, arguments, 0, function: name)
            return try encodeEach(try await body(a), function: name)
        }
    }

    @inlinable
    public func remote(_ a: Args, numReturns: Int) -> [ObjectRef<Element>] {
        submit([encodeArgument(a, function: name, index: 1)], numReturns: numReturns)
    }
    @inlinable
    public func remote(_ a: ObjectRef<Args>, numReturns: Int) -> [ObjectRef<Element>] { submit([a.argument], numReturns: numReturns) }
}

/// Each element encoded as its own result.
@inlinable
func encodeEach<T: Encodable>(_ values: [T], function: String) throws -> [EncodedResult] {
    var results: [EncodedResult] = []
    results.reserveCapacity(values.count)
    for value in values { results += try encodeResult(value, function: function) }
    return results
}
