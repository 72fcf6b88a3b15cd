// A user's Ray program built from its own package: tasks, a ref as an argument and an actor, on the
// cluster RAY_ADDRESS names. The executable is also its own worker.
import Distributed
import Ray

let square = RemoteFunction("square") { (x: Int) in x * x }
let sum = RemoteFunction("sum") { (values: [Int]) in values.reduce(0, +) }

distributed actor Tally: RayActor {
    var total = 0
    init(actorSystem: RayActorSystem, args start: Int) {
        self.actorSystem = actorSystem
        total = start
    }
    distributed func add(_ n: Int) -> Int {
        total += n
        return total
    }
}

@main
struct UserApp: RayApplication {
    static let remoteFunctions: [any AnyRemoteFunction] = [square, sum]

    static func main(ray: Ray) async throws {
        let squares = try await ray.get((1...10).map { square.remote($0) })
        let total = try await sum.remote(ray.put(squares)).get()
        let tally = try await ray.actor(Tally.self, args: 100)
        let counted = try await tally.add(total)
        print("user-app: squares \(squares.reduce(0, +)), sum task \(total), actor \(counted)")
    }
}
