import RayProtos

/// The names Ray's state API and metrics give these states (one table for both).
extension Ray_Rpc_ActorTableData.ActorState {
    public var rayName: String {
        switch self {
        case .dependenciesUnready: "DEPENDENCIES_UNREADY"
        case .pendingCreation: "PENDING_CREATION"
        case .alive: "ALIVE"
        case .restarting: "RESTARTING"
        case .dead, .UNRECOGNIZED: "DEAD"
        }
    }
}

extension Ray_Rpc_PlacementGroupTableData.PlacementGroupState {
    public var rayName: String {
        switch self {
        case .pending, .UNRECOGNIZED: "PENDING"
        case .prepared: "PREPARED"
        case .created: "CREATED"
        case .removed: "REMOVED"
        case .rescheduling: "RESCHEDULING"
        }
    }
}
