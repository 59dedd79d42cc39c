import Glibc

/// The numpy routines diffusers' `set_timesteps` builds its schedules with, reproduced in double so that the
/// same timesteps and σ values come out (rounding ties to even, as `ndarray.round` does).
enum Numpy {
    /// `numpy.linspace(start, stop, count)`: start + i·((stop − start)/(count − 1)), last point exactly stop.
    static func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
        if count == 1 { return [start] }
        let step = (stop - start) / Double(count - 1)
        var values = (0..<count).map { Double($0) * step + start }
        values[count - 1] = stop
        return values
    }

    /// `numpy.arange(start, stop, step)` for a float step: ⌈(stop − start)/step⌉ values; numpy stores start
    /// and start + step, then fills start + k·(second − first).
    static func arange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
        let length = max(0, Int(((stop - start) / step).rounded(.up)))
        let second = start + step
        let delta = second - start
        var values = [Double]()
        values.reserveCapacity(length)
        for k in 0..<length {
            let value: Double
            switch k {
            case 0: value = start
            case 1: value = second
            default: value = start + Double(k) * delta
            }
            values.append(value)
        }
        return values
    }

    /// `trailing` spacing, descending: `np.arange(T, 0, −T/S).round().astype(int64) − 1`. numpy sizes that
    /// arange as ⌈T/(T/S)⌉, which rounding makes S + 1 for some S (T = 1000: S = 61, 103, 121, …); the last
    /// value is then −1. Callers keep the first S (see `DDIMSchedule.timesteps`).
    static func trailingTimesteps(total: Int, steps: Int) -> [Int] {
        arange(Double(total), 0, -Double(total) / Double(steps)).map { Int($0.rounded(.toNearestOrEven)) - 1 }
    }

    /// `numpy.interp(x, arange(table.count), table)` for x in the table's range (clamped outside it, as numpy
    /// does): fp[j] + (x − j)·(fp[j+1] − fp[j]), computed as numpy's `slope·(x − xp[j]) + fp[j]`, and fp[j]
    /// exactly when x = j.
    static func interp(_ x: Double, table: [Float]) -> Double {
        let last = table.count - 1
        if x <= 0 { return Double(table[0]) }
        if x >= Double(last) { return Double(table[last]) }
        let j = Int(x.rounded(.down))
        if Double(j) == x { return Double(table[j]) }
        let slope = (Double(table[j + 1]) - Double(table[j])) / 1.0
        return slope * (x - Double(j)) + Double(table[j])
    }
}
