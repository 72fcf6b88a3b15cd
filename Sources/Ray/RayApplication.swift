import Foundation

/// The entry point of a Ray program. The same executable runs as the driver (your `main(ray:)`)
/// and, re-launched by the raylet, as its workers (which run the listed remote functions):
///
/// ```swift
/// let square = RemoteFunction("square") { (x: Int) in x * x }
///
/// @main struct App: RayApplication {
///     static let remoteFunctions: [any AnyRemoteFunction] = [square]
///     static func main(ray: Ray) async throws {
///         print(try await ray.get((0..<10).map { square.remote($0) }))
///     }
/// }
/// ```
public protocol RayApplication {
    /// Every remote function the program calls (workers find them by name).
    static var remoteFunctions: [any AnyRemoteFunction] { get }
    /// How the driver connects (default: `RAY_ADDRESS`, else an embedded local cluster).
    static var clusterAddress: String? { get }
    static var localClusterOptions: Ray.LocalClusterOptions { get }
    /// The driver's program.
    static func main(ray: Ray) async throws
}

extension RayApplication {
    public static var clusterAddress: String? { nil }
    public static var localClusterOptions: Ray.LocalClusterOptions { Ray.LocalClusterOptions() }

    /// Runs as a worker if the raylet launched this process as one, else as the driver: starts Ray,
    /// runs `main(ray:)`, shuts Ray down, and exits non-zero if `main` threw.
    public static func main() async {
        if await Ray.runWorkerIfLaunchedAsOne(functions: remoteFunctions) { return }
        let ray: Ray
        do {
            ray = try await Ray.start(address: clusterAddress, options: localClusterOptions, functions: remoteFunctions)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        }
        do {
            try await main(ray: ray)
            await ray.shutdown()
        } catch {
            await ray.shutdown()
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            exit(1)
        }
    }
}
