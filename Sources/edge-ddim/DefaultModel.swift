import Glibc
import _EdgeCore

/// The model file the commands use without `--model`, found as an installed command expects: the default model
/// installed beside the command (`PREFIX/bin/edge-ddim` reads `PREFIX/share/edge-ddim/models/`, where
/// `tools/install.sh` puts it), else the file `$EDGE_DDIM_MODEL` names, else `models/` under the current folder
/// (a clone of the repository).
enum DefaultModel {
    static let fileName = "ddpm-fashion-32.edm"
    static let inRepository = "models/" + fileName
    static let environmentVariable = "EDGE_DDIM_MODEL"

    /// Resolved once, when a command first needs it (it is the `--model` options' default).
    static let path: String = {
        if let installed = installedPath(), fileExists(installed) { return installed }
        if let named = getenv(environmentVariable).map({ String(cString: $0) }), !named.isEmpty { return named }
        return inRepository
    }()

    /// `<folder of this executable>/../share/edge-ddim/models/ddpm-fashion-32.edm`, from /proc/self/exe (so a
    /// command started through a symbolic link or from PATH finds its own installation).
    static func installedPath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let executable = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = executable.lastIndex(of: "/") else { return nil }
        return String(executable[..<slash]) + "/../share/edge-ddim/models/" + fileName
    }

    /// What `model … not found` adds when the missing file is the default.
    static var searchedPlaces: String {
        let installed = installedPath() ?? "PREFIX/share/edge-ddim/models/" + fileName
        return " (looked for \(installed), $\(environmentVariable) and ./\(inRepository): run from the repository root, set \(environmentVariable), or pass --model PATH)"
    }
}
