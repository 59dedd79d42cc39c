import Synchronization
import CEdgeDDIM
import _EdgeCore
import EdgeImageIO
import EdgeDDIM

// The C API of edgeddim.h, over the Swift library. Every entry point catches everything: a C caller gets a
// status and a one-line message (`edgeddim_last_error`), never a Swift error or a trap for bad arguments.

/// The open handles. A handle is a number that this table maps to its object, so a closed, freed or made-up
/// handle is a failed lookup, never a dangling pointer dereferenced; numbers are never reused. This is the one
/// piece of process-wide state, as a file-descriptor table is the kernel's, and it is guarded by a lock.
private final class HandleTable: Sendable {
    enum Object { case model(ModelFile), cancel(CancellationToken) }

    private let state = Mutex<(next: UInt, objects: [UInt: Object])>((next: 1, objects: [:]))

    func insert(_ object: Object) -> OpaquePointer {
        let id = state.withLock { s in
            defer { s.next += 1 }
            s.objects[s.next] = object
            return s.next
        }
        return OpaquePointer(bitPattern: id)!
    }

    func remove(_ handle: OpaquePointer) -> Object? {
        state.withLock { $0.objects.removeValue(forKey: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))) }
    }

    func model(_ handle: OpaquePointer?, _ what: String) throws -> ModelFile {
        guard let handle else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "\(what) is NULL") }
        guard case .model(let m)? = lookup(handle) else {
            throw CError(EDGEDDIM_ERROR_CLOSED_HANDLE, "\(what) is not an open model (closed already, or not made by edgeddim_model_open)")
        }
        return m
    }

    func cancel(_ handle: OpaquePointer?, _ what: String) throws -> CancellationToken {
        guard let handle else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "\(what) is NULL") }
        guard case .cancel(let c)? = lookup(handle) else {
            throw CError(EDGEDDIM_ERROR_CLOSED_HANDLE, "\(what) is not a live cancel token (freed already, or not made by edgeddim_cancel_new)")
        }
        return c
    }

    private func lookup(_ handle: OpaquePointer) -> Object? {
        state.withLock { $0.objects[UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))] }
    }
}

private let handles = HandleTable()

/// A failure with its C status.
private struct CError: Error {
    let status: Int32, message: String
    init(_ status: Int, _ message: String) { self.status = Int32(status); self.message = message }
}

/// Runs one entry point: records the message of a failure for `edgeddim_last_error` and returns its status.
private func entryPoint(_ kind: Int, _ body: () throws -> Void) -> edgeddim_status {
    do {
        try body()
        edgeddim_store_error(nil)
        return Int32(EDGEDDIM_OK)
    } catch let e as CError {
        edgeddim_store_error(e.message)
        return e.status
    } catch let e as GenerationCancelled {
        edgeddim_store_error(e.description)
        return Int32(EDGEDDIM_ERROR_CANCELLED)
    } catch let e as EdgeError {
        edgeddim_store_error(e.message)
        return Int32(e.kind == .usage ? EDGEDDIM_ERROR_INVALID_ARGUMENT : kind)
    } catch {
        edgeddim_store_error("\(error)")
        return Int32(kind)
    }
}

private func string(_ p: UnsafePointer<CChar>?, _ what: String) throws -> String? {
    guard let p else { return nil }
    guard let s = String(validatingCString: p) else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "\(what) is not valid UTF-8") }
    return s
}

/// The C options as the Swift library's, checked field by field (the library checks the ranges it owns).
private func samplingOptions(_ pointer: UnsafePointer<edgeddim_options>?, model: ModelFile) throws -> SamplingOptions {
    guard let pointer else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "options is NULL") }
    let o = pointer.pointee
    guard o.struct_size == MemoryLayout<edgeddim_options>.size else {
        throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "options.struct_size is \(o.struct_size), this library's edgeddim_options is \(MemoryLayout<edgeddim_options>.size) bytes: call edgeddim_options_init first")
    }
    var s = SamplingOptions()
    s.steps = Int(o.steps)
    s.count = Int(o.count)
    s.seed = o.seed
    let name = try string(o.sampler, "options.sampler") ?? SamplerKind.ddim.rawValue
    guard let kind = SamplerKind(rawValue: name) else {
        throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "unknown sampler '\(name)' (samplers: \(SamplerKind.names))")
    }
    guard o.eta.isFinite, (0 ... 1).contains(o.eta) else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "options.eta must be in [0, 1], got \(o.eta)") }
    s.sampler = SamplerSettings(kind: kind, eta: o.eta)
    guard (0 ... 1024).contains(o.threads) else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "options.threads must be in 0...1024, got \(o.threads)") }
    s.threadCount = Int(o.threads)
    guard o.batch >= 0 else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "options.batch must not be negative, got \(o.batch)") }
    s.batch = o.batch == 0 ? nil : Int(o.batch)
    s.prompt = try string(o.prompt, "options.prompt")
    s.negativePrompt = try string(o.negative_prompt, "options.negative_prompt")
    // A text-to-image model with no prompt draws the empty prompt, as diffusers does for prompt="".
    if model.textEncoder != nil, s.prompt == nil { s.prompt = "" }
    s.guidance = o.guidance
    guard o.size >= 0 else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "options.size must not be negative, got \(o.size)") }
    if o.size > 0 {
        guard model.textEncoder != nil else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "options.size: model \(model.path) has a fixed size (it is not a text-to-image model)") }
        s.width = Int(o.size)
        s.height = Int(o.size)
    }
    return s
}

@_cdecl("edgeddim_version")
public func edgeddim_version() -> UnsafePointer<CChar> { versionString }

/// Made once and never freed: the pointer `edgeddim_version` returns must stay valid. Never written after it is
/// made, so sharing it between threads is safe (what `nonisolated(unsafe)` asserts).
nonisolated(unsafe) private let versionString: UnsafePointer<CChar> = {
    let utf8 = Array(EdgeDDIMVersion.version.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count)
    p.initialize(from: utf8, count: utf8.count)
    return UnsafePointer(p)
}()

@_cdecl("edgeddim_api_version")
public func edgeddim_api_version() -> Int32 { Int32(EDGEDDIM_API_VERSION) }

@_cdecl("edgeddim_options_init")
public func edgeddim_options_init(_ options: UnsafeMutablePointer<edgeddim_options>?) {
    guard let options else { return }
    let d = SamplingOptions()
    options.pointee = edgeddim_options(struct_size: MemoryLayout<edgeddim_options>.size, steps: Int32(d.steps), count: 1, seed: d.seed,
                                       sampler: nil, eta: d.sampler.eta, threads: 0, batch: 0, prompt: nil, negative_prompt: nil,
                                       guidance: d.guidance, size: 0, progress: nil, progress_user_data: nil, cancel: nil)
}

@_cdecl("edgeddim_model_open")
public func edgeddim_model_open(_ path: UnsafePointer<CChar>?, _ model: UnsafeMutablePointer<OpaquePointer?>?) -> edgeddim_status {
    model?.pointee = nil
    return entryPoint(Int(EDGEDDIM_ERROR_MODEL)) {
        guard let model else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "model (the handle's address) is NULL") }
        guard let path = try string(path, "path") else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "path is NULL") }
        guard fileExists(path) else { throw CError(EDGEDDIM_ERROR_MODEL, "model \(path) not found") }
        model.pointee = handles.insert(.model(try ModelFile(path: path)))
    }
}

@_cdecl("edgeddim_model_close")
public func edgeddim_model_close(_ model: OpaquePointer?) -> edgeddim_status {
    entryPoint(Int(EDGEDDIM_ERROR_CLOSED_HANDLE)) {
        _ = try handles.model(model, "model")
        _ = handles.remove(model!)
    }
}

@_cdecl("edgeddim_output_size")
public func edgeddim_output_size(_ model: OpaquePointer?, _ options: UnsafePointer<edgeddim_options>?, _ bytes: UnsafeMutablePointer<Int>?,
                                 _ channels: UnsafeMutablePointer<Int32>?, _ height: UnsafeMutablePointer<Int32>?,
                                 _ width: UnsafeMutablePointer<Int32>?) -> edgeddim_status {
    entryPoint(Int(EDGEDDIM_ERROR_MODEL)) {
        let file = try handles.model(model, "model")
        let shape = try file.outputShape(for: samplingOptions(options, model: file))
        bytes?.pointee = shape.count * shape.channels * shape.height * shape.width
        channels?.pointee = Int32(shape.channels)
        height?.pointee = Int32(shape.height)
        width?.pointee = Int32(shape.width)
    }
}

@_cdecl("edgeddim_generate")
public func edgeddim_generate(_ model: OpaquePointer?, _ options: UnsafePointer<edgeddim_options>?, _ pixels: UnsafeMutablePointer<UInt8>?,
                              _ capacity: Int) -> edgeddim_status {
    entryPoint(Int(EDGEDDIM_ERROR_MODEL)) {
        let file = try handles.model(model, "model")
        let settings = try samplingOptions(options, model: file)
        let shape = try file.outputShape(for: settings)
        let needed = shape.count * shape.channels * shape.height * shape.width
        guard let pixels else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "pixels is NULL") }
        guard capacity >= needed else {
            throw CError(EDGEDDIM_ERROR_BUFFER_TOO_SMALL, "pixels holds \(capacity) bytes; \(shape.count) images of \(shape.height)×\(shape.width)×\(shape.channels) need \(needed)")
        }
        do {
            try MemoryLimit.physicalMemory.check(model: file, options: settings)
        } catch let e as EdgeError {
            throw CError(EDGEDDIM_ERROR_OUT_OF_MEMORY, e.message)
        }
        let o = options!.pointee
        let token = try o.cancel.map { try handles.cancel($0, "options.cancel") }
        // A non-zero answer of the callback raises this call's own token, read before the next evaluation.
        let callbackStop = CancellationToken()
        let progress = o.progress.map { callback in
            { (done: Int, total: Int) in
                if callback(Int32(done), Int32(total), o.progress_user_data) != 0 { callbackStop.cancel() }
            }
        }
        let images = try file.generate(settings, progress: progress, stopWhen: { callbackStop.isCancelled || (token?.isCancelled ?? false) })
        images.pixels.withUnsafeBufferPointer { pixels.update(from: $0.baseAddress!, count: needed) }
    }
}

@_cdecl("edgeddim_write_png")
public func edgeddim_write_png(_ path: UnsafePointer<CChar>?, _ pixels: UnsafePointer<UInt8>?, _ count: Int32, _ channels: Int32,
                               _ height: Int32, _ width: Int32) -> edgeddim_status {
    entryPoint(Int(EDGEDDIM_ERROR_IO)) {
        guard let path = try string(path, "path") else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "path is NULL") }
        guard let pixels else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "pixels is NULL") }
        guard count >= 1, channels == 1 || channels == 3, height >= 1, width >= 1, height <= 1 << 15, width <= 1 << 15,
              count <= Int32(SamplingOptions.maxCount) else {
            throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "images of count \(count), channels \(channels), \(height)×\(width): need 1...\(SamplingOptions.maxCount) images of 1 or 3 channels, 1...32768 pixels a side")
        }
        let n = Int(count) * Int(channels) * Int(height) * Int(width)
        let grid: PixelGrid
        do {
            grid = try EdgeImageIO.grid(tiles: UnsafeBufferPointer(start: pixels, count: n), count: Int(count), channels: Int(channels),
                                     height: Int(height), width: Int(width))
        } catch let e as EdgeError {
            throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, e.message)
        }
        try PNG.write(grid, to: path)
    }
}

@_cdecl("edgeddim_cancel_new")
public func edgeddim_cancel_new(_ cancel: UnsafeMutablePointer<OpaquePointer?>?) -> edgeddim_status {
    cancel?.pointee = nil
    return entryPoint(Int(EDGEDDIM_ERROR_INVALID_ARGUMENT)) {
        guard let cancel else { throw CError(EDGEDDIM_ERROR_INVALID_ARGUMENT, "cancel (the token's address) is NULL") }
        cancel.pointee = handles.insert(.cancel(CancellationToken()))
    }
}

@_cdecl("edgeddim_cancel_request")
public func edgeddim_cancel_request(_ cancel: OpaquePointer?) -> edgeddim_status {
    entryPoint(Int(EDGEDDIM_ERROR_CLOSED_HANDLE)) { try handles.cancel(cancel, "cancel").cancel() }
}

@_cdecl("edgeddim_cancel_free")
public func edgeddim_cancel_free(_ cancel: OpaquePointer?) -> edgeddim_status {
    entryPoint(Int(EDGEDDIM_ERROR_CLOSED_HANDLE)) {
        _ = try handles.cancel(cancel, "cancel")
        _ = handles.remove(cancel!)
    }
}
