import RayProtos
import RayRPC

/// The raylet's methods (Protos/ray/node_manager.proto), shared by the raylet and its clients.
public enum NodeManagerMethods {
    private static func method<Request, Response>(_ name: String) -> RPCMethod<Request, Response> {
        RPCMethod(service: "ray.rpc.NodeManagerService", method: name)
    }

    public static let registerClient: RPCMethod<Ray_Rpc_RegisterClientRequest, Ray_Rpc_RegisterClientReply> =
        method("RegisterClient")
    public static let disconnectClient: RPCMethod<Ray_Rpc_DisconnectClientRequest, Ray_Rpc_DisconnectClientReply> =
        method("DisconnectClient")
    public static let requestWorkerLease: RPCMethod<Ray_Rpc_RequestWorkerLeaseRequest, Ray_Rpc_RequestWorkerLeaseReply> =
        method("RequestWorkerLease")
    public static let returnWorker: RPCMethod<Ray_Rpc_ReturnWorkerRequest, Ray_Rpc_ReturnWorkerReply> =
        method("ReturnWorker")
    public static let cancelWorkerLease: RPCMethod<Ray_Rpc_CancelWorkerLeaseRequest, Ray_Rpc_CancelWorkerLeaseReply> =
        method("CancelWorkerLease")
    public static let notifyTaskBlocked: RPCMethod<Ray_Rpc_NotifyTaskBlockedRequest, Ray_Rpc_NotifyTaskBlockedReply> =
        method("NotifyTaskBlocked")
    public static let createObject: RPCMethod<Ray_Rpc_CreateObjectRequest, Ray_Rpc_CreateObjectReply> =
        method("CreateObject")
    public static let sealObject: RPCMethod<Ray_Rpc_SealObjectRequest, Ray_Rpc_SealObjectReply> = method("SealObject")
    public static let deleteObjects: RPCMethod<Ray_Rpc_DeleteObjectsRequest, Ray_Rpc_DeleteObjectsReply> =
        method("DeleteObjects")
    public static let getNodeStats: RPCMethod<Ray_Rpc_GetNodeStatsRequest, Ray_Rpc_GetNodeStatsReply> =
        method("GetNodeStats")
    public static let prepareBundleResources: RPCMethod<Ray_Rpc_PrepareBundleResourcesRequest, Ray_Rpc_PrepareBundleResourcesReply> =
        method("PrepareBundleResources")
    public static let commitBundleResources: RPCMethod<Ray_Rpc_CommitBundleResourcesRequest, Ray_Rpc_CommitBundleResourcesReply> =
        method("CommitBundleResources")
    public static let cancelResourceReserve: RPCMethod<Ray_Rpc_CancelResourceReserveRequest, Ray_Rpc_CancelResourceReserveReply> =
        method("CancelResourceReserve")
    public static let drainRaylet: RPCMethod<Ray_Rpc_DrainRayletRequest, Ray_Rpc_DrainRayletReply> = method("DrainRaylet")
    /// Server streaming: another raylet pulls an object of this node's store, chunk by chunk.
    public static let pullObject: RPCMethod<Ray_Rpc_PullObjectRequest, Ray_Rpc_ObjectChunk> = method("PullObject")
    public static let listLogs: RPCMethod<Ray_Rpc_ListLogsRequest, Ray_Rpc_ListLogsReply> = method("ListLogs")
    public static let streamLog: RPCMethod<Ray_Rpc_StreamLogRequest, Ray_Rpc_LogChunk> = method("StreamLog")
    public static let fetchObject: RPCMethod<Ray_Rpc_FetchObjectRequest, Ray_Rpc_FetchObjectReply> = method("FetchObject")
}

/// The core worker's methods (Protos/ray/core_worker.proto), served by every driver and worker.
public enum CoreWorkerMethods {
    private static func method<Request, Response>(_ name: String) -> RPCMethod<Request, Response> {
        RPCMethod(service: "ray.rpc.CoreWorkerService", method: name)
    }

    public static let pushTasks: RPCMethod<Ray_Rpc_PushTasksRequest, Ray_Rpc_PushTasksReply> = method("PushTasks")
    public static let getObjectStatus: RPCMethod<Ray_Rpc_GetObjectStatusRequest, Ray_Rpc_GetObjectStatusReply> =
        method("GetObjectStatus")
    public static let cancelTask: RPCMethod<Ray_Rpc_CancelTaskRequest, Ray_Rpc_CancelTaskReply> = method("CancelTask")
    public static let addObjectLocation: RPCMethod<Ray_Rpc_AddObjectLocationRequest, Ray_Rpc_AddObjectLocationReply> =
        method("AddObjectLocation")
    public static let addBorrower: RPCMethod<Ray_Rpc_AddBorrowerRequest, Ray_Rpc_AddBorrowerReply> = method("AddBorrower")
    public static let removeBorrower: RPCMethod<Ray_Rpc_RemoveBorrowerRequest, Ray_Rpc_RemoveBorrowerReply> =
        method("RemoveBorrower")
    public static let publishLogs: RPCMethod<Ray_Rpc_PublishLogsRequest, Ray_Rpc_PublishLogsReply> =
        method("PublishLogs")
    public static let getCoreWorkerStats: RPCMethod<Ray_Rpc_GetCoreWorkerStatsRequest, Ray_Rpc_GetCoreWorkerStatsReply> =
        method("GetCoreWorkerStats")
}
