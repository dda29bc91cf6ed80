import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A user who is not root, for what such a user runs: created once on the machine (the suite runs as root, as CI
/// does), with a home of its own that keeps its libguestfs appliance between runs, as a real user's would.
enum UnprivilegedUser {
    static let name = "imgcustomize-test"
    static let home = "/var/lib/imgcustomize-test"

    /// Created on first use; thread-safe (a static let), so tests running at once create it once.
    private static let created: Result<Void, TestFailure> = Result {
        guard geteuid() == 0 else { throw TestFailure("creating the user \(name) needs root; run the suite as root, as CI does") }
        if getpwnam(name) == nil {
            let result = try runProcess("/usr/sbin/useradd", ["--system", "--create-home", "--home-dir", home,
                                                               "--shell", "/usr/sbin/nologin", name])
            guard result.status == 0 || getpwnam(name) != nil else { throw TestFailure("useradd \(name): \(result.stderr)") }
        }
    }.mapError { $0 as? TestFailure ?? TestFailure("\($0)") }

    static var ids: (uid: uid_t, gid: gid_t) {
        get throws {
            try created.get()
            guard let entry = getpwnam(name) else { throw TestFailure("no user \(name)") }
            return (entry.pointee.pw_uid, entry.pointee.pw_gid)
        }
    }

    /// Gives `path` (a test's directory) to the user, so that it can read its image and write its output there.
    static func own(_ path: String) throws {
        let (uid, gid) = try ids
        guard chown(path, uid, gid) == 0 else { throw TestFailure("chown \(path): \(String(cString: strerror(errno)))") }
    }

    /// Runs the built imgcustomize as the user, with a clean environment (its own HOME and cache), from a copy in its
    /// home: the build directory may lie where the user cannot reach (a clone under /root).
    static func imgcustomize(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        let (uid, gid) = try ids
        let binary = home + "/imgcustomize"
        try? FileManager.default.removeItem(atPath: binary)
        try FileManager.default.copyItem(atPath: try imgcustomizeBinary(), toPath: binary)
        guard chown(binary, uid, gid) == 0 else { throw TestFailure("chown \(binary): \(String(cString: strerror(errno)))") }
        var variables = ["HOME=\(home)", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C.UTF-8"]
        for name in ["IMGCUSTOMIZE_ACCEL", "LIBGUESTFS_BACKEND_SETTINGS", "TMPDIR"] {
            if let value = ProcessInfo.processInfo.environment[name] { variables.append("\(name)=\(value)") }
        }
        variables += environment.map { "\($0.key)=\($0.value)" }.sorted()
        return try runProcess("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(gid)", "--init-groups", "--",
                                                  "/usr/bin/env", "-i"] + variables + [binary] + arguments)
    }
}

@Suite struct UnprivilegedRefusalTests {
    /// Ubuntu installs its kernels readable by root only; a user's first launch, which builds their appliance from
    /// one, is refused at once with the fix instead of failing inside supermin.
    @Test func aUserWhoCannotReadTheKernelIsToldBeforeAnyLaunch() throws {
        let directory = try TestDirectory()
        try UnprivilegedUser.own(directory.path)
        let image = directory.path("blank.qcow2")
        try runTool("qemu-img", ["create", "-q", "-f", "qcow2", image, "16M"])
        try UnprivilegedUser.own(image)
        let kernel = directory.path("vmlinuz-root-only")
        #expect(FileManager.default.createFile(atPath: kernel, contents: Data("not readable\n".utf8),
                                               attributes: [.posixPermissions: 0o600]))

        let started = Date()
        let run = try UnprivilegedUser.imgcustomize(["inspect", "--os", image], environment: [
            "SUPERMIN_KERNEL": kernel, "XDG_CACHE_HOME": directory.path("cache"),
        ])
        #expect(run.status == 1)
        #expect(run.stderr.contains("cannot read the host kernel \(kernel): libguestfs builds this user's appliance from it"),
                "\(run.stderr)")
        #expect(run.stderr.contains("hint: make SUPERMIN_KERNEL name a kernel this user can read"), "\(run.stderr)")
        #expect(Date().timeIntervalSince(started) < 30, "refused only after a launch")
    }
}
