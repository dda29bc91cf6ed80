import Foundation
import Testing
@testable import Operations
@testable import DirectoryTree

@Suite struct DisableReposTests {
    static let centos = """
        # CentOS-Base.repo
        #

        [base]
        name=CentOS-$releasever - Base
        mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os
        #baseurl=http://mirror.centos.org/centos/$releasever/os/$basearch/
        gpgcheck=1

        #released updates
        [updates]
        name=CentOS-$releasever - Updates
        enabled=1
        gpgcheck=1

        [extras]
        name=extras
        enabled = 0

        """

    @Test func everySectionDisabledLayoutKept() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/yum.repos.d/CentOS-Base.repo", Self.centos)
        try tree.file("/etc/yum.repos.d/README", "not a repo\n")
        let (first, second) = try tree.applyTwice(DisableRepos())
        #expect(tree.text("/etc/yum.repos.d/CentOS-Base.repo") == """
            # CentOS-Base.repo
            #

            [base]
            name=CentOS-$releasever - Base
            mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os
            #baseurl=http://mirror.centos.org/centos/$releasever/os/$basearch/
            gpgcheck=1
            enabled=0

            #released updates
            [updates]
            name=CentOS-$releasever - Updates
            enabled=0
            gpgcheck=1

            [extras]
            name=extras
            enabled = 0

            """)
        #expect(first.summary == "disabled base, updates")
        #expect(second.summary == "3 repositories already disabled")
        #expect(tree.text("/etc/yum.repos.d/README") == "not a repo\n")
    }

    @Test func globSelectsRepositoryIds() throws {
        let tree = try TemporaryTree()
        try tree.file("/etc/yum.repos.d/redhat.repo", "[rhel-7-server-rpms]\nenabled=1\n\n[epel]\nenabled=1\n")
        try tree.applyTwice(try DisableRepos.parse("rhel-*"))
        #expect(tree.text("/etc/yum.repos.d/redhat.repo") == "[rhel-7-server-rpms]\nenabled=0\n\n[epel]\nenabled=1\n")
    }

    @Test func noRepositoriesIsNotAnError() throws {
        let tree = try TemporaryTree()
        let (first, _) = try tree.applyTwice(DisableRepos())
        #expect(first.changed == .no && first.summary == "no repository matches *")
    }
}
