import Foundation

/// `${XDG_CACHE_HOME:-~/.cache}/imgcustomize`: what imgcustomize keeps between runs (the acceleration verdict, the
/// PVH kernels, its appliance). Nothing in it is precious: removing it costs the next launch a rebuild.
enum ToolCache {
    static func directory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let base: String
        if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") {
            base = cache
        } else {
            base = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache").path
        }
        return (base as NSString).appendingPathComponent("imgcustomize")
    }
}
