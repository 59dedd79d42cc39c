/// The geometry of one 2-D convolution over NCHW fp32 tensors with square kernels.
///
/// Padding is given per side because DDPM's TensorFlow-born downsampler pads only right and bottom
/// (diffusers' `downsample_padding=0`). Reads outside the padded input are zeros.
public struct Conv2DShape: Equatable, Sendable {
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var height: Int
    public var width: Int
    public var kernel: Int
    public var stride: Int
    public var padTop: Int
    public var padLeft: Int
    public var padBottom: Int
    public var padRight: Int

    public init(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: Int,
                stride: Int = 1, padTop: Int, padLeft: Int, padBottom: Int, padRight: Int) {
        self.batch = batch; self.inChannels = inChannels; self.outChannels = outChannels
        self.height = height; self.width = width; self.kernel = kernel; self.stride = stride
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
    }

    /// Same-size convolution: k×k, stride 1, padding k/2 on every side.
    public static func same(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int, kernel: Int) -> Conv2DShape {
        let p = kernel / 2
        return Conv2DShape(batch: batch, inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                           kernel: kernel, padTop: p, padLeft: p, padBottom: p, padRight: p)
    }

    public var outHeight: Int { (height + padTop + padBottom - kernel) / stride + 1 }
    public var outWidth: Int { (width + padLeft + padRight - kernel) / stride + 1 }
    /// Elements of one output channel's weights: I · k · k.
    public var fanIn: Int { inChannels * kernel * kernel }
    public var inputCount: Int { batch * inChannels * height * width }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    public var multiplyAccumulates: Int { batch * outChannels * outHeight * outWidth * fanIn }
}
