import RayProtos
import RayRPC

/// The GCS's methods (Protos/ray/gcs_service.proto), shared by the GCS server and its clients.
public enum GCSMethods {
    private static func method<Request, Response>(_ service: String, _ name: String) -> RPCMethod<Request, Response> {
        RPCMethod(service: "ray.rpc.\(service)", method: name)
    }

    public static let registerNode: RPCMethod<Ray_Rpc_RegisterNodeRequest, Ray_Rpc_RegisterNodeReply> =
        method("NodeInfoGcsService", "RegisterNode")
    public static let unregisterNode: RPCMethod<Ray_Rpc_UnregisterNodeRequest, Ray_Rpc_UnregisterNodeReply> =
        method("NodeInfoGcsService", "UnregisterNode")
    public static let getAllNodeInfo: RPCMethod<Ray_Rpc_GetAllNodeInfoRequest, Ray_Rpc_GetAllNodeInfoReply> =
        method("NodeInfoGcsService", "GetAllNodeInfo")
    public static let checkAlive: RPCMethod<Ray_Rpc_CheckAliveRequest, Ray_Rpc_CheckAliveReply> =
        method("NodeInfoGcsService", "CheckAlive")

    public static let addJob: RPCMethod<Ray_Rpc_AddJobRequest, Ray_Rpc_AddJobReply> = method("JobInfoGcsService", "AddJob")
    public static let markJobFinished: RPCMethod<Ray_Rpc_MarkJobFinishedRequest, Ray_Rpc_MarkJobFinishedReply> =
        method("JobInfoGcsService", "MarkJobFinished")
    public static let getAllJobInfo: RPCMethod<Ray_Rpc_GetAllJobInfoRequest, Ray_Rpc_GetAllJobInfoReply> =
        method("JobInfoGcsService", "GetAllJobInfo")
    public static let getNextJobID: RPCMethod<Ray_Rpc_GetNextJobIDRequest, Ray_Rpc_GetNextJobIDReply> =
        method("JobInfoGcsService", "GetNextJobID")

    public static let kvGet: RPCMethod<Ray_Rpc_InternalKVGetRequest, Ray_Rpc_InternalKVGetReply> =
        method("InternalKVGcsService", "InternalKVGet")
    public static let kvPut: RPCMethod<Ray_Rpc_InternalKVPutRequest, Ray_Rpc_InternalKVPutReply> =
        method("InternalKVGcsService", "InternalKVPut")
    public static let kvDel: RPCMethod<Ray_Rpc_InternalKVDelRequest, Ray_Rpc_InternalKVDelReply> =
        method("InternalKVGcsService", "InternalKVDel")
    public static let kvExists: RPCMethod<Ray_Rpc_InternalKVExistsRequest, Ray_Rpc_InternalKVExistsReply> =
        method("InternalKVGcsService", "InternalKVExists")
    public static let kvKeys: RPCMethod<Ray_Rpc_InternalKVKeysRequest, Ray_Rpc_InternalKVKeysReply> =
        method("InternalKVGcsService", "InternalKVKeys")

    public static let addWorkerInfo: RPCMethod<Ray_Rpc_AddWorkerInfoRequest, Ray_Rpc_AddWorkerInfoReply> =
        method("WorkerInfoGcsService", "AddWorkerInfo")
    public static let reportWorkerFailure: RPCMethod<Ray_Rpc_ReportWorkerFailureRequest, Ray_Rpc_ReportWorkerFailureReply> =
        method("WorkerInfoGcsService", "ReportWorkerFailure")
    public static let getAllWorkerInfo: RPCMethod<Ray_Rpc_GetAllWorkerInfoRequest, Ray_Rpc_GetAllWorkerInfoReply> =
        method("WorkerInfoGcsService", "GetAllWorkerInfo")

    public static let reportResourceUsage: RPCMethod<Ray_Rpc_ReportResourceUsageRequest, Ray_Rpc_ReportResourceUsageReply> =
        method("NodeResourceInfoGcsService", "ReportResourceUsage")
    public static let getAllResourceUsage: RPCMethod<Ray_Rpc_GetAllResourceUsageRequest, Ray_Rpc_GetAllResourceUsageReply> =
        method("NodeResourceInfoGcsService", "GetAllResourceUsage")

    public static let subscriberPoll: RPCMethod<Ray_Rpc_GcsSubscriberPollRequest, Ray_Rpc_GcsSubscriberPollReply> =
        method("InternalPubSubGcsService", "GcsSubscriberPoll")

    public static let createActor: RPCMethod<Ray_Rpc_CreateActorRequest, Ray_Rpc_CreateActorReply> =
        method("ActorInfoGcsService", "CreateActor")
    public static let getActorInfo: RPCMethod<Ray_Rpc_GetActorInfoRequest, Ray_Rpc_GetActorInfoReply> =
        method("ActorInfoGcsService", "GetActorInfo")
    public static let getNamedActorInfo: RPCMethod<Ray_Rpc_GetNamedActorInfoRequest, Ray_Rpc_GetNamedActorInfoReply> =
        method("ActorInfoGcsService", "GetNamedActorInfo")
    public static let getAllActorInfo: RPCMethod<Ray_Rpc_GetAllActorInfoRequest, Ray_Rpc_GetAllActorInfoReply> =
        method("ActorInfoGcsService", "GetAllActorInfo")
    public static let killActorViaGcs: RPCMethod<Ray_Rpc_KillActorViaGcsRequest, Ray_Rpc_KillActorViaGcsReply> =
        method("ActorInfoGcsService", "KillActorViaGcs")

    public static let addTaskEventData: RPCMethod<Ray_Rpc_AddTaskEventDataRequest, Ray_Rpc_AddTaskEventDataReply> =
        method("TaskInfoGcsService", "AddTaskEventData")
    public static let getTaskEvents: RPCMethod<Ray_Rpc_GetTaskEventsRequest, Ray_Rpc_GetTaskEventsReply> =
        method("TaskInfoGcsService", "GetTaskEvents")

    public static let createPlacementGroup: RPCMethod<Ray_Rpc_CreatePlacementGroupRequest, Ray_Rpc_CreatePlacementGroupReply> =
        method("PlacementGroupInfoGcsService", "CreatePlacementGroup")
    public static let removePlacementGroup: RPCMethod<Ray_Rpc_RemovePlacementGroupRequest, Ray_Rpc_RemovePlacementGroupReply> =
        method("PlacementGroupInfoGcsService", "RemovePlacementGroup")
    public static let getPlacementGroup: RPCMethod<Ray_Rpc_GetPlacementGroupRequest, Ray_Rpc_GetPlacementGroupReply> =
        method("PlacementGroupInfoGcsService", "GetPlacementGroup")
    public static let getNamedPlacementGroup: RPCMethod<Ray_Rpc_GetNamedPlacementGroupRequest, Ray_Rpc_GetNamedPlacementGroupReply> =
        method("PlacementGroupInfoGcsService", "GetNamedPlacementGroup")
    public static let getAllPlacementGroup: RPCMethod<Ray_Rpc_GetAllPlacementGroupRequest, Ray_Rpc_GetAllPlacementGroupReply> =
        method("PlacementGroupInfoGcsService", "GetAllPlacementGroup")
    public static let waitPlacementGroupUntilReady: RPCMethod<Ray_Rpc_WaitPlacementGroupUntilReadyRequest, Ray_Rpc_WaitPlacementGroupUntilReadyReply> =
        method("PlacementGroupInfoGcsService", "WaitPlacementGroupUntilReady")
}

/// gRPC's standard health check, served by raylets and called by the GCS.
public enum HealthMethods {
    public static let check = RPCMethod<Grpc_Health_V1_HealthCheckRequest, Grpc_Health_V1_HealthCheckResponse>(
        "/grpc.health.v1.Health/Check")

    /// A router entry that answers SERVING.
    public static func register(on router: inout RPCRouter) {
        router.register(check) { _, _ in
            var reply = Grpc_Health_V1_HealthCheckResponse()
            reply.status = .serving
            return reply
        }
    }
}
