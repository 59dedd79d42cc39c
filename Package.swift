// swift-tools-version:6.0
// The boards run Debian trixie's Swift 6.0.3: use nothing newer than tools-version 6.0.
import PackageDescription
import Foundation

// The fast kernels are written with Swift SIMD types; on x86-64 they need a target CPU with FMA, or every
// fused multiply-add becomes a library call (measured: 1.2 GFLOP/s without, 150+ with). By default the
// build targets the CPU it runs on, like llama.cpp's GGML_NATIVE: set EDGE_DDIM_TARGET_CPU to another
// LLVM CPU name (haswell, cortex-a72, cortex-a76, ...) for a portable or cross build, or to an empty string
// for the compiler's baseline. ARM64's baseline already has NEON and FMA.
#if arch(x86_64)
let defaultTargetCPU = "native"
#else
let defaultTargetCPU = ""
#endif
let targetCPU = ProcessInfo.processInfo.environment["EDGE_DDIM_TARGET_CPU"] ?? defaultTargetCPU
// The engine is always optimised, so a debug build (`swift test`) still evaluates UNets at a usable speed.
let engineSettings: [SwiftSetting] = (targetCPU.isEmpty ? [] : [.unsafeFlags(["-target-cpu", targetCPU])])
    + [.unsafeFlags(["-O"], .when(configuration: .debug))]

// Dependencies point one way:
//   _EdgeCore  <-  _EdgeQuant  <-  _EdgeKernels (+ _EdgeMicrokernels, C)  <-  EdgeUNet  <-  EdgeDDIM  <-  edge-ddim (CLI)
//   _EdgeCore  <-  EdgeGraph (one graph per model family)  <-  EdgeModelFile  <-  EdgeUNet, EdgeConvert  <-  convert (tools/convert)
//   _EdgeCore  <-  EdgeSampler, EdgeImageIO  <-  EdgeDDIM  <-  EdgeDDIMC (the C API, + CEdgeDDIM: its header)  =  libedgeddim.so
//   _EdgeCore  <-  EdgeText (CLIP's tokenizer)  <-  EdgeModelFile (which embeds it), EdgeConvert
// The sampler never imports the UNet; the CLI holds no maths.
let package = Package(
    name: "edge-ddim",
    products: [
        .executable(name: "edge-ddim", targets: ["edge-ddim"]),
        .executable(name: "convert", targets: ["convert"]),
        .library(name: "EdgeDDIM", targets: ["EdgeDDIM"]),
        // The C API (Sources/CEdgeDDIM/include/edgeddim.h) as libedgeddim.so, for programs in any language.
        .library(name: "edgeddim", type: .dynamic, targets: ["EdgeDDIMC"]),
    ],
    dependencies: [
        // Used by the two command-line tools only; the engine depends on the toolchain alone.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // OpenMP through one small C file (Debian: libomp-dev). The runtime is linked by its file name, which
        // is in the default library path on Debian 12 and 13 alike.
        .target(
            name: "_EdgeThreads",
            cSettings: [.unsafeFlags(["-fopenmp"])],
            linkerSettings: [.linkedLibrary(":libomp.so.5")]),
        .target(name: "_EdgeCore", dependencies: ["_EdgeThreads"], swiftSettings: engineSettings),
        .target(name: "_EdgeQuant", dependencies: ["_EdgeCore"], swiftSettings: engineSettings),
        // The int8 tile kernels Swift cannot express (x86 vpdpbusd, ARM sdot), each compiled for its extension
        // with a target attribute and chosen at run time; always optimised, like the Swift engine.
        .target(name: "_EdgeMicrokernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "_EdgeKernels", dependencies: ["_EdgeCore", "_EdgeQuant", "_EdgeMicrokernels"], swiftSettings: engineSettings),
        // Each model family written down once, as a graph (no weights, no kernels): parameters, FLOPs, the
        // memory plan and the kernel choice all derive from it.
        .target(name: "EdgeGraph", dependencies: ["_EdgeCore"], swiftSettings: engineSettings),
        .target(name: "EdgeModelFile", dependencies: ["_EdgeCore", "_EdgeQuant", "EdgeGraph", "EdgeText"], swiftSettings: engineSettings),
        // Lowers a graph to kernels and runs it (the runtime knows no model family).
        .target(name: "EdgeUNet", dependencies: ["_EdgeCore", "_EdgeQuant", "_EdgeKernels", "EdgeGraph", "EdgeModelFile"], swiftSettings: engineSettings),
        .target(name: "EdgeSampler", dependencies: ["_EdgeCore"], swiftSettings: engineSettings),
        .target(name: "EdgeImageIO", dependencies: ["_EdgeCore"], swiftSettings: engineSettings),
        // Prompt to token ids (CLIP's BPE), exactly as transformers' CLIPTokenizer.
        .target(name: "EdgeText", dependencies: ["_EdgeCore"], swiftSettings: engineSettings),
        .target(name: "EdgeDDIM", dependencies: ["_EdgeCore", "EdgeGraph", "EdgeModelFile", "EdgeUNet", "EdgeSampler", "EdgeImageIO", "EdgeText"], swiftSettings: engineSettings),
        // The C API: its header (and the per-thread last error, which Swift cannot declare) in C, its
        // functions in Swift over EdgeDDIM (@_cdecl).
        .target(name: "CEdgeDDIM"),
        .target(name: "EdgeDDIMC", dependencies: ["CEdgeDDIM", "_EdgeCore", "EdgeImageIO", "EdgeDDIM"], swiftSettings: engineSettings),
        .target(name: "EdgeConvert", dependencies: ["_EdgeCore", "_EdgeQuant", "EdgeGraph", "EdgeModelFile", "EdgeText"], swiftSettings: engineSettings),
        .executableTarget(
            name: "edge-ddim",
            dependencies: ["EdgeDDIM", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "convert",
            dependencies: ["EdgeConvert", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "tools/convert"),
        // Test-only allocator interposer that counts heap allocations (see AllocationTests).
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .testTarget(
            name: "EdgeDDIMTests",
            dependencies: ["AllocationCounter", "_EdgeCore", "_EdgeQuant", "_EdgeKernels", "EdgeGraph", "EdgeModelFile", "EdgeUNet",
                           "EdgeSampler", "EdgeImageIO", "EdgeDDIM", "EdgeConvert", "EdgeText", "CEdgeDDIM", "EdgeDDIMC"]),
        // The library's documented example, against the umbrella module alone.
        .testTarget(name: "EdgeDDIMLibraryTests", dependencies: ["EdgeDDIM"]),
    ]
)
