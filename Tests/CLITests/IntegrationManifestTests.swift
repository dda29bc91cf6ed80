import ArgumentParser
import Foundation
import Testing
@testable import CLICommands
import Profiles
import TestSupport

/// The Tekton Task and the Kubernetes Job in integrations/ run the container image scripts/container builds: each is
/// valid YAML (read by Python's yaml, as kubectl's YAML is read), names the image as scripts/container tags it
/// (imgcustomize:RELEASE), and its command line, with the Task's parameters put in, is one the CLI parses.
@Suite struct IntegrationManifestTests {
    /// The manifest's documents, through Python's yaml into JSON.
    func documents(_ path: String) throws -> [[String: Any]] {
        let script = "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"
        let result = try runProcess("/usr/bin/python3", ["-c", script, packageRoot.appendingPathComponent(path).path])
        guard result.status == 0 else {
            throw TestFailure("\(path) is not valid YAML, or python3-yaml is missing (scripts/install-deps): \(result.stderr)")
        }
        let parsed = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
        return try #require(parsed, "\(path): not a list of mappings")
    }

    /// The one container (a Job's) or step (a Task's) and its command line.
    func expectRunsApply(_ container: [String: Any], substituting parameters: [String: [String]] = [:],
                         in path: String) throws -> IMGCustomize.Apply {
        #expect(container["image"] as? String == "imgcustomize:\(IMGCustomize.release)", "\(path)")
        let command = try #require(container["command"] as? [String], "\(path): no command")
        #expect(command == ["imgcustomize"], "\(path)")
        let arguments = (container["args"] as? [String] ?? []).flatMap { argument in
            parameters[argument] ?? [argument]
        }
        let parsed = try IMGCustomize.parseAsRoot(arguments)
        return try #require(parsed as? IMGCustomize.Apply, "\(path): \(arguments) is not an apply")
    }

    @Test func theTektonTaskRunsApplyOnTheWorkspacesImage() throws {
        let path = "integrations/tekton/imgcustomize-apply-task.yaml"
        let task = try #require(try documents(path).first)
        #expect(task["apiVersion"] as? String == "tekton.dev/v1")
        #expect(task["kind"] as? String == "Task")
        let metadata = task["metadata"] as? [String: Any]
        #expect((metadata?["labels"] as? [String: Any])?["app.kubernetes.io/version"] as? String == IMGCustomize.release)
        let spec = try #require(task["spec"] as? [String: Any])
        let parameters = spec["params"] as? [[String: Any]] ?? []
        #expect(parameters.compactMap { $0["name"] as? String } == ["profile", "image", "options"])
        let defaultProfile = try #require(parameters.first?["default"] as? String)
        #expect(BuiltinProfiles.named(defaultProfile) != nil, "\(defaultProfile) is no built-in profile")
        #expect((spec["workspaces"] as? [[String: Any]])?.map { $0["name"] as? String } == ["images"])
        let steps = try #require(spec["steps"] as? [[String: Any]])
        #expect(steps.count == 1)
        let step = try #require(steps.first)
        #expect(step["workingDir"] as? String == "$(workspaces.images.path)")

        // Tekton's substitution: strings in place, the array parameter spread into arguments.
        let apply = try expectRunsApply(step, substituting: [
            "$(params.profile)": [defaultProfile], "$(params.image)": ["rhel9.qcow2"],
            "$(params.options[*])": ["--output", "rhel9-cloud.qcow2", "--compress", "zstd", "--hostname", "web1"],
        ], in: path)
        #expect(apply.profile == defaultProfile)
        #expect(apply.runOptions.json)
        #expect(apply.runOptions.output == "rhel9-cloud.qcow2")
        #expect(try apply.operationArguments.planned().images == ["rhel9.qcow2"])
        #expect(try apply.operationArguments.planned().operations.count == 1)
        // An empty options array leaves a command line that parses too.
        _ = try expectRunsApply(step, substituting: [
            "$(params.profile)": [defaultProfile], "$(params.image)": ["rhel9.qcow2"], "$(params.options[*])": [],
        ], in: path)
        #expect((step["volumeMounts"] as? [[String: Any]])?.first?["mountPath"] as? String == "/var/tmp")
    }

    @Test func theKubernetesJobRunsApplyOnTheClaimsImage() throws {
        let path = "integrations/kubernetes/imgcustomize-apply-job.yaml"
        let job = try #require(try documents(path).first)
        #expect(job["apiVersion"] as? String == "batch/v1")
        #expect(job["kind"] as? String == "Job")
        let spec = try #require(job["spec"] as? [String: Any])
        #expect(spec["backoffLimit"] as? Int == 0)
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        #expect(pod["restartPolicy"] as? String == "Never")
        let containers = try #require(pod["containers"] as? [[String: Any]])
        #expect(containers.count == 1)
        let container = try #require(containers.first)
        let apply = try expectRunsApply(container, in: path)
        #expect(BuiltinProfiles.named(apply.profile) != nil, "\(apply.profile) is no built-in profile")
        #expect(apply.runOptions.json)

        // The image and the output are on the claim's volume.
        let mounts = container["volumeMounts"] as? [[String: Any]] ?? []
        let volumes = pod["volumes"] as? [[String: Any]] ?? []
        let claimVolume = try #require(volumes.first { $0["persistentVolumeClaim"] != nil }?["name"] as? String)
        let claimMount = try #require(mounts.first { $0["name"] as? String == claimVolume }?["mountPath"] as? String)
        let images = try apply.operationArguments.planned().images
        #expect(!images.isEmpty)
        for path in images + [apply.runOptions.output ?? ""] {
            #expect(path.hasPrefix(claimMount + "/"), "\(path) is not on the claim mounted at \(claimMount)")
        }
    }
}
