import ArgumentParser
import Customize
import Formats

extension IMGCustomize {
    struct Sparsify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Discard the guest's free space and rewrite the image compressed (virt-sparsify --compress, faster).",
            discussion: """
            Trims every filesystem, unused swap and free LVM space through the appliance, then rewrites the image \
            through imgcustomize's parallel QCOW2 writer, with the same transaction as `apply`.

            EXAMPLES:
              imgcustomize sparsify rhel7.qcow2
              imgcustomize sparsify rhel7.qcow2 --output rhel7-small.qcow2 --compress zstd
              imgcustomize sparsify disk.raw --output disk.qcow2
              imgcustomize sparsify a.qcow2 b.qcow2 --output-dir small/
            """)

        @OptionGroup var global: GlobalOptions
        @OptionGroup var runOptions: RunArguments

        @Argument(help: "The disk image (or several, with --output-dir: each appliance launch works on a share of them).", completion: .file())
        var images: [String]

        @Option(help: "Compression of the qcow2 result: zlib (default), zstd or none.")
        var compress: ClusterCompression?

        func run() throws {
            var options = try runOptions.options(global: global, compression: compress)
            switch try runOptions.selection(images) {
            case .one(let image, let output):
                options.output = output
                try execute(options: options, global: global, json: runOptions.json) { pipeline, progress in
                    try pipeline.sparsify(image, progress: progress)
                }
            case .batch(let images, let directory):
                try executeBatch(options: options, global: global, json: runOptions.json) { pipeline, progress in
                    try pipeline.sparsify(images, outputDirectory: directory, progress: progress)
                }
            }
        }
    }
}
