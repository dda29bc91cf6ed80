import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct YAMLListAddTests {
    static let cloudCfg = """
        users:
         - default

        disable_root: 1
        ssh_pwauth:   0

        # The modules that run in the 'init' stage
        cloud_init_modules:
         - migrator
         - bootcmd
         - write-files
         - growpart
         - resizefs
         - set_hostname
         - update_hostname
         - update_etc_hosts
         - rsyslog
         - users-groups
         - ssh

        cloud_config_modules:
         - mounts
         - locale

        """

    @Test func addsTheItemOnceWithTheListsIndentation() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/cloud/cloud.cfg", Self.cloudCfg)
        let (first, second) = try tree.applyTwice(try YAMLListAdd.parse("/etc/cloud/cloud.cfg:cloud_init_modules:resolv-conf"))
        #expect(tree.text("/etc/cloud/cloud.cfg") == Self.cloudCfg.replacingOccurrences(
            of: " - ssh\n", with: " - ssh\n - resolv-conf\n"))
        #expect(first.summary == "added resolv-conf under cloud_init_modules")
        #expect(second.summary == "resolv-conf already listed under cloud_init_modules")
        #expect(first.diffs?.first?.unified == """
            --- a/etc/cloud/cloud.cfg
            +++ b/etc/cloud/cloud.cfg
            @@ -17,6 +17,7 @@
              - rsyslog
              - users-groups
              - ssh
            + - resolv-conf
             
             cloud_config_modules:
              - mounts

            """)
    }

    @Test func recognisesAQuotedItemAndNestedEntries() throws {
        let tree = try TemporaryTree()
        let text = "cloud_init_modules:\n  - 'resolv-conf'\n  - [ssh, always]\nother: 1\n"
        try tree.file("/c.cfg", text)
        try tree.applyTwice(YAMLListAdd("/c.cfg", key: "cloud_init_modules", item: "resolv-conf"))
        #expect(tree.text("/c.cfg") == text)
        let mapping = "runcmd:\n- name: a\n  shell: true\n# end\n"
        try tree.file("/m.cfg", mapping)
        try tree.applyTwice(YAMLListAdd("/m.cfg", key: "runcmd", item: "echo: hi"))
        #expect(tree.text("/m.cfg") == "runcmd:\n- name: a\n  shell: true\n- 'echo: hi'\n# end\n")
    }

    @Test func addsAMissingKey() throws {
        let tree = try TemporaryTree()
        try tree.file("/c.cfg", "a: 1")
        try tree.applyTwice(YAMLListAdd("/c.cfg", key: "cloud_init_modules", item: "resolv-conf"))
        #expect(tree.text("/c.cfg") == "a: 1\ncloud_init_modules:\n  - resolv-conf\n")
    }

    @Test func refusesAFlowList() throws {
        let tree = try TemporaryTree()
        try tree.file("/c.cfg", "cloud_init_modules: [a, b]\n")
        let error = #expect(throws: GuestError.self) {
            try YAMLListAdd("/c.cfg", key: "cloud_init_modules", item: "c").apply(to: tree.guest, context: OperationContext())
        }
        #expect(error?.message == "cloud_init_modules is not a block list (\"[a, b]\")")
    }
}
