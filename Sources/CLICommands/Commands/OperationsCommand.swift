import ArgumentParser
import Operations

extension IMGCustomize {
    struct OperationsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "operations",
            abstract: "List every operation with its summary and parameters (the options of `customize`).",
            discussion: "EXAMPLE:\n  imgcustomize operations")
        @OptionGroup var global: GlobalOptions

        func run() {
            for descriptor in OperationRegistry.all {
                let option = "--\(descriptor.name)"
                print(descriptor.argument.usage(option))
                print("    \(descriptor.summary)")
                if !descriptor.isFlag { print("    e.g. \(descriptor.argument.exampleUsage(option))") }
            }
        }
    }
}
