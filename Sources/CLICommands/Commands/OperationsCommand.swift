import ArgumentParser
import Customize
import Foundation
import Operations

extension IMGCustomize {
    struct OperationsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "operations",
            abstract: "List every operation with its summary and parameters (the options of `customize`).",
            discussion: """
            EXAMPLES:
              imgcustomize operations
              imgcustomize operations --sysprep
              imgcustomize operations --where bash-history    # the file that defines it, and its summary
            """)
        @OptionGroup var global: GlobalOptions

        @Flag(help: "List the operations `apply sysprep --operations` and `--enable` choose from, in the order they run, each with whether it is on by default and its virt-sysprep name.")
        var sysprep = false

        @Option(name: .customLong("where"), help: ArgumentHelp("Print the source file that defines the operation NAME, then its summary.", valueName: "NAME"))
        var whereName: String?

        @Flag(help: "Print one JSON document on stdout.")
        var json = false

        func validate() throws {
            guard let whereName else { return }
            guard !sysprep else { throw ValidationError("give either --where or --sysprep, not both") }
            guard OperationRegistry.named(whereName) != nil else {
                throw ValidationError("no operation named '\(whereName)'; `imgcustomize operations` lists them")
            }
        }

        func run() {
            if let whereName, let descriptor = OperationRegistry.named(whereName) {
                if json {
                    Output.document(jsonDocument(OperationsDocument.Entry(
                        name: descriptor.name, summary: descriptor.summary, usage: descriptor.argument.usage("--\(descriptor.name)"),
                        source: descriptor.sourceFile)))
                } else {
                    print(descriptor.sourceFile)
                    print("    \(descriptor.name): \(descriptor.summary)")
                }
                return
            }
            if json {
                let entries = sysprep
                    ? SysprepSelection.known.map {
                        OperationsDocument.Entry(name: $0.name, summary: $0.summary, usage: $0.argument.usage("--\($0.name)"),
                                                 sysprepDefault: $0.isSysprepDefault)
                    }
                    : OperationRegistry.all.map {
                        OperationsDocument.Entry(name: $0.name, summary: $0.summary, usage: $0.argument.usage("--\($0.name)"),
                                                 example: $0.isFlag ? nil : $0.argument.exampleUsage("--\($0.name)"))
                    }
                Output.document(jsonDocument(OperationsDocument(operations: entries)))
                return
            }
            if sysprep {
                print(sysprepListing())
                return
            }
            for descriptor in OperationRegistry.all {
                let option = "--\(descriptor.name)"
                print(descriptor.argument.usage(option))
                print("    \(descriptor.summary)")
                if !descriptor.isFlag { print("    e.g. \(descriptor.argument.exampleUsage(option))") }
            }
        }

        /// One line an operation: its name, `default` or `off` (with virt-sysprep's name where it differs), summary.
        func sysprepListing() -> String {
            let width = SysprepSelection.known.map(\.name.count).max() ?? 0
            return SysprepSelection.known.map { descriptor in
                var state = descriptor.isSysprepDefault ? "default" : "off    "
                switch descriptor.sysprep {
                case .virtSysprep(let alias), .virtSysprepOnRequest(let alias):
                    if alias != descriptor.name { state += " (virt-sysprep's \(alias))" }
                case .cloudImages: state += " (not in virt-sysprep)"
                case .virtSysprepImplicit: state += " (virt-sysprep does it in every run)"
                case .no: break
                }
                let name = descriptor.name.padding(toLength: width, withPad: " ", startingAt: 0)
                return "\(name)  \(state)  \(descriptor.summary)"
            }.joined(separator: "\n")
        }
    }
}
