import Ray
@main struct Demo: RayApplication {
    static let remoteFunctions: [any AnyRemoteFunction] = []
    static func main(ray: Ray) async throws {}
}
