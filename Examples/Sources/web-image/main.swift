// web-image: prepares a RHEL 7 web-server cloud image with the built-in rhel7-cloud profile plus a site's own
// steps, in one appliance launch.
//
//   swift run web-image rhel7.qcow2 web-cloud.qcow2
import Customize
import Foundation
import Operations
import Profiles

let webCloud = Profile(
    "web-cloud", summary: "rhel7-cloud plus our web server settings",
    requires: .distro("rhel", major: 7), output: .compressedQCOW2
) { guest in
    Group("web server") {
        SetLine("/etc/sysconfig/httpd", key: "OPTIONS", value: "-DFOREGROUND")
        WriteFile("/etc/motd", text: "web tier image, built by web-image\n")
        if guest.minorVersion < 9 {
            Note("RHEL 7.\(guest.minorVersion) is past its support: rebuild from a 7.9 base")
        }
    }
    BuiltinProfiles.rhel7Cloud
}

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 2, let image = arguments.first, let output = arguments.last else {
    FileHandle.standardError.write(Data("usage: web-image IMAGE OUTPUT\n".utf8))
    exit(2)
}
do {
    let pipeline = Pipeline(options: RunOptions(output: output))
    let report = try pipeline.apply(webCloud, to: image)
    print(report.text(diffs: false))
} catch {
    FileHandle.standardError.write(Data("web-image: \(error)\n".utf8))
    exit(1)
}
