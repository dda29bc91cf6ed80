import ArgumentParser
import Customize
import Formats
import Foundation
import Operations

extension ImageFormat: ExpressibleByArgument {}
extension OutputFormat: ExpressibleByArgument {}
extension ClusterCompression: ExpressibleByArgument {}

extension IMGCustomize {
    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite an image as compressed qcow2 or sparse raw, compressing on every core.",
            discussion: """
            Zero clusters are never written, and holes cost nothing to read. The output passes `qemu-img check` and \
            is on the disk when the command returns (fsync; `--no-fsync` skips it). The input is inspected first and \
            refused when unsafe (a backing file, an external data file, a polyglot...), and read through the \
            descriptor that was checked.

            The output is replaced as a whole or not at all: the new image is written beside it under a temporary \
            name and renamed over it once complete and checked, so a failure, a signal or kill -9 leaves what was \
            there untouched. A second run writing the same output is refused, and so is an output that is the input \
            under another name. An image a running qemu has open for writing is refused, as qemu-img refuses it \
            (`--force-share` reads it anyway).

            EXAMPLES:
              imgcustomize convert rhel7.qcow2 rhel7-compressed.qcow2
              imgcustomize convert -O raw rhel7.qcow2 rhel7.raw        # for Ceph: holes where the guest has zeros
              imgcustomize convert --compress zstd disk.raw disk.qcow2
            """)

        @Option(name: .customShort("O"), help: "Output format: qcow2 or raw.")
        var outputFormat: OutputFormat = .qcow2

        @Option(name: .customShort("f"), help: "Input format (detected when omitted; an image detected as another format is refused).")
        var inputFormat: ImageFormat?

        @Option(help: "qcow2 cluster compression: zlib (what every qemu reads), zstd or none.")
        var compress: ClusterCompression = .zlib

        @Option(help: "Compression level: zlib 0 to 12 (default 4), zstd its own range, up to 22 (default 1).")
        var level: Int32?

        @Option(help: "qcow2 cluster size in bytes, a power of two from 512 to 2097152.")
        var clusterSize: Int = 65536

        @Flag(help: "Read through the input's backing file (only for images you made yourself).")
        var allowBacking = false

        @Flag(name: [.customLong("force-share"), .customShort("U")],
              help: "Read an image another process (a running qemu) has open for writing, as qemu-img -U does; the copy may be torn.")
        var forceShare = false

        @Flag(help: ArgumentHelp("Return without waiting for the output to reach the disk, as qemu-img convert does by default.",
                                 discussion: "For an output read at once and then removed, such as Glance's staging file: after a crash it may be incomplete."))
        var noFsync = false

        @OptionGroup var global: GlobalOptions

        @Argument(help: "The image to read.", completion: .file())
        var input: String

        @Argument(help: "The image to write (replaced if it exists).", completion: .file())
        var output: String

        @Flag(help: "Print one JSON document on stdout: what was written, or why nothing was.")
        var json = false

        func run() throws {
            let policy = SafetyPolicy(allowedFormats: inputFormat.map { [$0] }, allowBackingFile: allowBacking,
                                      access: global.access, forceShare: forceShare)
            let options = WriteOptions(format: outputFormat, compression: compress, clusterSize: clusterSize,
                                       level: level, durable: !noFsync)
            let bar = ProgressBar("converting", enabled: !global.quiet)
            // A signal stops the conversion at the next batch; the output stays as it was.
            let cancellation = Interruption.install()
            let conversion = Conversion(options: options, policy: policy, cancellation: cancellation,
                                        logger: global.makeLogger())
            let stats = try conversion.run(input, to: output) {
                bar.update(done: Int64($0.bytesDone), total: Int64($0.bytesTotal))
            }
            if json {
                Output.document(jsonDocument(ConvertDocument(input: input, output: output, format: outputFormat,
                                                             virtualSize: stats.virtualSize, stats: stats)))
                return
            }
            let megabytes = Double(stats.virtualSize) / 1_000_000
            let rate = stats.seconds > 0 ? Double(stats.bytesRead) / 1_000_000 / stats.seconds : 0
            print(String(format: "%@: %.1f MB virtual, %.1f MB read, %.1f MB written in %.2f s (%.0f MB/s read)",
                         output, megabytes, Double(stats.bytesRead) / 1_000_000,
                         Double(stats.outputSize) / 1_000_000, stats.seconds, rate))
        }
    }
}
