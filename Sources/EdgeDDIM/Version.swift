/// The release of the engine and its tools (`edge-ddim --version`); the model file's format has its own number,
/// `ModelFormat.version`.
public enum EdgeDDIMVersion {
    public static let version = "0.1.0"
}
