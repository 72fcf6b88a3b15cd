/// How a submitted job's working directory travels: the job supervisor unpacks the package and
/// starts the entrypoint in it with these variables set; a Swift driver passes them on in the job
/// table; a raylet on another node fetches the same package and starts the job's workers from its
/// own copy (paths under the driver's copy rebased onto it).
public enum RuntimeEnvironment {
    /// The package's URI (`gcs://_ray_pkg_<hash>.zip`).
    public static let workingDirURI = "RAY_RUNTIME_ENV_WORKING_DIR"
    /// Where the package was unpacked on the driver's node.
    public static let workingDirPath = "RAY_RUNTIME_ENV_WORKING_DIR_PATH"
    /// The job's submission ID (Ray's name).
    public static let submissionID = "RAY_JOB_SUBMISSION_ID"

    /// `path` with the folder `root` replaced by `local` (unchanged when it is not under `root`).
    public static func rebase(_ path: String, from root: String, to local: String) -> String {
        let root = root.hasSuffix("/") ? String(root.dropLast()) : root
        if path == root { return local }
        guard path.hasPrefix(root + "/") else { return path }
        return local + path.dropFirst(root.count)
    }
}
