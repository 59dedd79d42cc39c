import ArgumentParser
import EdgeDDIM

/// `--max-memory`, shared by every command that loads a model (`@OptionGroup var memory: MaxMemoryOption`).
struct MaxMemoryOption: ParsableArguments {
    @Option(name: .customLong("max-memory"),
            help: ArgumentHelp("Refuse a model that would need more memory than this: BYTES, NNK, NNM or NNG (binary). Default: the machine's physical memory.",
                               valueName: "bytes"))
    var maxMemory: String?

    /// Parsed before the model is opened, so a malformed value is a usage error that costs nothing.
    func limit() throws -> MemoryLimit { try MemoryLimit(option: maxMemory) }
}
