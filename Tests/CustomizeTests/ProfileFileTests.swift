import Foundation
import Testing
import TestSupport
import Customize
import Diagnostics
import Operations
import Profiles

/// Profile files: the printed form of every built-in profile, applied to a fixture tree, gives the same guest files
/// as the built-in on the same tree; a user's file with an include and headers; errors naming the file and line.
@Suite struct ProfileFileTests {
    /// The fixture tree of a guest each built-in profile is for (its requirement's example guest). windows-cloud
    /// edits hives, which no tree here holds: its file form is compared step by step below, and read back on an
    /// image in WindowsInspectionTests.
    static let layers: [String: [String]] = [
        "cloud": ["common", "el9", "rhel9"], "rhel9-cloud": ["common", "el9", "rhel9"], "rhel8-cloud": ["common", "el8"],
        "rhel7-cloud": ["common", "rhel7"], "rhel6-cloud": ["common", "rhel6"], "fedora-cloud": ["fedora40"],
        "debian-cloud": ["debian12"], "ubuntu-cloud": ["ubuntu2404"], "sysprep": ["common", "rhel7"],
    ]

    @Test(arguments: BuiltinProfiles.all.map(\.name).filter { $0 != BuiltinProfiles.windowsCloud.name })
    func thePrintedFormGivesTheBuiltinsFiles(name: String) throws {
        let profile = try #require(BuiltinProfiles.named(name))
        let layers = try #require(Self.layers[name], "no fixture tree for \(name)")
        let guest = profile.requirement?.exampleGuest ?? GuestFacts(type: "linux")
        let directory = try TestDirectory()
        let file = directory.path("\(name).profile")
        try ProfileFile.text(of: profile, guest: guest).write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try ProfileFile.read(file, builtin: BuiltinProfiles.named)
        #expect(fromFile.name == profile.name && fromFile.summary == profile.summary && fromFile.output == profile.output)
        // cloud's file holds the steps of the profile it chose for the example guest, and that profile's requirement.
        let requirement = name == "cloud" ? BuiltinProfiles.rhel9Cloud.requirement : profile.requirement
        #expect(fromFile.requirement?.description == requirement?.description)

        let builtinTree = try fixtureTree(layers), fileTree = try fixtureTree(layers)
        let builtinReport = try Pipeline().apply(profile, onTree: builtinTree.path, guest: guest)
        let fileReport = try Pipeline().apply(fromFile, onTree: fileTree.path, guest: guest)
        #expect(!builtinReport.steps.isEmpty)
        #expect(fileReport.steps.contains { $0.changed == .yes })
        let builtinFiles = try Self.contents(builtinTree.path), fileFiles = try Self.contents(fileTree.path)
        #expect(builtinFiles.keys.sorted() == fileFiles.keys.sorted())
        for (path, entry) in builtinFiles {
            // A fresh random seed is random: its size is what the two runs share.
            let same = path.hasSuffix("random-seed") ? entry.data.count == fileFiles[path]?.data.count
                : entry == fileFiles[path]
            #expect(same, "\(name): \(path) differs")
        }
    }

    /// A user's file: headers, an include that runs first, its own operations, a continued line and comments.
    @Test func aUsersProfileFileWithAnInclude() throws {
        let directory = try TestDirectory()
        let file = directory.path("web.profile")
        try """
            #@ name: web
            #@ summary: A web server on the RHEL 7 cloud image
            #@ include: rhel7-cloud
            # The site
            mkdir:/srv/www
            write:/srv/www/index.html:<h1>hello</h1>
            set-line:/etc/sysconfig/httpd:\\
              LANG=C
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let profile = try ProfileFile.read(file, builtin: BuiltinProfiles.named)
        #expect(profile.name == "web" && profile.output == .compressedQCOW2)
        #expect(profile.requirement?.description == BuiltinProfiles.rhel7Cloud.requirement?.description)
        let guest = try #require(profile.requirement?.exampleGuest)
        let steps = profile.steps(for: guest)
        #expect(steps.first?.path == ["web", "rhel7-cloud", "cloud image", "network (step 4)"], "\(steps.first?.path ?? [])")
        #expect(steps.suffix(3).map(\.operation.name) == ["mkdir", "write", "set-line"])
        let tree = try fixtureTree(["common", "rhel7"])
        _ = try Pipeline().apply(profile, onTree: tree.path, guest: guest)
        #expect(try String(contentsOfFile: tree.path("srv/www/index.html"), encoding: .utf8) == "<h1>hello</h1>")
        #expect(try String(contentsOfFile: tree.path("etc/sysconfig/httpd"), encoding: .utf8).contains("LANG=C\n"))
    }

    /// windows-cloud's file form declares its parameters and uses them as ${NAME}: read back with the same values,
    /// it has the built-in's steps, command for command; without them, it is refused naming what is missing.
    @Test func theParametersOfAProfileFile() throws {
        let directory = try TestDirectory()
        let profile = BuiltinProfiles.windowsCloud
        let guest = try #require(profile.requirement?.exampleGuest)
        let text = try ProfileFile.text(of: profile, guest: guest)
        #expect(text.contains("#@ param: virtio-win (host path): The virtio-win ISO, or a directory with its layout\n"))
        #expect(text.contains("#@ param: admin-user=Admin: The account"))
        #expect(text.contains("\ninject-virtio-win:${virtio-win}\n"))
        let file = directory.path("windows.profile")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let values = ["virtio-win": directory.path, "cloudbase-init": file, "admin-user": "Administrator"]
        func commands(_ profile: Profile) throws -> [String] {
            try profile.steps(for: guest).flatMap { try ($0.operation as? any CommandLineRepresentable)?.commandLines() ?? [] }
        }
        let fromFile = try ProfileFile.read(file, parameters: values, builtin: BuiltinProfiles.named).binding(values)
        let builtin = try commands(profile.binding(values))
        #expect(try commands(fromFile) == builtin)
        #expect(builtin.contains("firstboot-install:\(file) RUN_SERVICE_AS_LOCAL_SYSTEM=1 USERNAME=Administrator LOGGINGSERIALPORTNAME=COM1"),
                "\(builtin)")
        #expect(fromFile.parameters == profile.parameters)

        let missing = #expect(throws: UsageError.self) {
            try ProfileFile.read(file, parameters: [:], builtin: BuiltinProfiles.named).binding(["virtio-win": directory.path])
        }
        #expect(missing?.diagnostic.message.contains("needs its parameter cloudbase-init") == true, "\(String(describing: missing))")
        let unknown = #expect(throws: UsageError.self) { try profile.binding(values.merging(["colour": "blue"]) { $1 }) }
        #expect(unknown?.diagnostic.message == "profile windows-cloud has no parameter 'colour'; its parameters are "
                + "virtio-win, cloudbase-init, admin-user", "\(String(describing: unknown))")
    }

    /// `cloud` takes windows-cloud's parameters as not required (a Linux guest needs none of them), and refuses a
    /// Windows guest when they are missing, once it knows the guest and before any change.
    @Test func cloudNeedsWindowsCloudsParametersOnlyForWindows() throws {
        let cloud = try BuiltinProfiles.cloud.binding([:])
        #expect(cloud.parameters.map(\.neededBy) == [String?](repeating: "windows-cloud", count: 3))
        let tree = try TestDirectory()
        let windows = GuestFacts(type: "windows", distro: "windows", majorVersion: 10, minorVersion: 0)
        let thrown = #expect(throws: (any Error).self) { try Pipeline().apply(cloud, onTree: tree.path, guest: windows) }
        let error = thrown.map { Diagnostic(of: $0) }
        #expect(error?.message.hasSuffix("profile cloud runs windows-cloud on this guest, which needs its parameters virtio-win "
                                          + "(The virtio-win ISO, or a directory with its layout) and cloudbase-init "
                                          + "(Cloudbase-Init's MSI, CloudbaseInitSetup_x64.msi from cloudbase.it)") == true,
                "\(String(describing: error))")
        #expect(error?.hint == "give --param virtio-win=PATH --param cloudbase-init=PATH "
                + "(`imgcustomize profiles show windows-cloud` lists its parameters)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path).isEmpty)
        #expect(cloud.missingParameters(for: GuestFacts(type: "linux", distro: "rhel", majorVersion: 9)).isEmpty)
    }

    @Test(arguments: [
        ("mkdir:/srv\n#@ name: late\n", 2, "a header line after the first operation"),
        ("#@ output: zip\n", 1, "unknown output \"zip\""),
        ("#@ include: no-such\n", 1, "no built-in profile named 'no-such'"),
        ("#@ colour: blue\n", 1, "unknown header `colour`"),
        ("#@ param: iso\n", 1, "`param: iso` has no summary"),
        ("#@ param: a b: c\n", 1, "`param: a b: c` names no parameter (letters, digits, - and _)"),
        ("#@ name: x\nno-such-operation:1\n", 2, "unknown command \"no-such-operation\""),
    ])
    func errorsNameTheFileAndLine(text: String, line: Int, problem: String) throws {
        let directory = try TestDirectory()
        let file = directory.path("bad.profile")
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let error = #expect(throws: CommandFileError.self) { try ProfileFile.read(file, builtin: BuiltinProfiles.named) }
        #expect(error?.file == file && error?.line == line, "\(String(describing: error))")
        #expect(error?.problem == problem, "\(String(describing: error))")
        #expect(error?.hint?.isEmpty == false)
    }

    struct Entry: Equatable {
        var kind: FileAttributeType
        var mode: Int
        var data: Data
    }

    /// Every entry below `root` (relative path: kind, permissions, content or link target).
    static func contents(_ root: String) throws -> [String: Entry] {
        var result: [String: Entry] = [:]
        let manager = FileManager.default
        for case let path as String in manager.enumerator(atPath: root) ?? FileManager.DirectoryEnumerator() {
            let full = root + "/" + path
            let attributes = try manager.attributesOfItem(atPath: full)
            let kind = attributes[.type] as? FileAttributeType ?? .typeUnknown
            let data: Data = switch kind {
            case .typeRegular: manager.contents(atPath: full) ?? Data()
            case .typeSymbolicLink: Data(try manager.destinationOfSymbolicLink(atPath: full).utf8)
            default: Data()
            }
            result[path] = Entry(kind: kind, mode: attributes[.posixPermissions] as? Int ?? 0, data: data)
        }
        return result
    }
}
