//! A simulated solar inverter, sans-IO.
//!
//! The model is a pure function of time, its parameters and a seeded RNG:
//! [`SolarInverter::step`] advances it to a wall-clock instant. Irradiance
//! follows a clear-sky bell between sunrise and sunset, dimmed by a cloud
//! process; the PV array, the inverter's efficiency curve, the grid (three
//! phases, ~50 Hz), the heatsink's thermal lag and the energy counters
//! follow from it. Controls (power limit, cos phi, run command) and injected
//! faults change what it produces. Rendering to Modbus registers lives in
//! [`crate::register_map`].

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MS_PER_DAY: i64 = 86_400_000;

/// Fixed properties of one inverter and its site.
#[derive(Debug, Clone, PartialEq)]
pub struct InverterParams {
    /// AC rating in W.
    pub rated_ac_w: f64,
    /// PV array peak power in Wp (usually a little above the AC rating).
    pub array_wp: f64,
    /// MPP voltage of the array at 25 °C, in V.
    pub mpp_voltage_v: f64,
    /// Local solar time of sunrise and sunset, in hours.
    pub sunrise_h: f64,
    pub sunset_h: f64,
    /// Local time = UTC + this many hours.
    pub utc_offset_h: f64,
    /// 0 = clear sky, 1 = heavy, fast-moving clouds.
    pub cloudiness: f64,
    pub ambient_c: f64,
    /// Phase-to-neutral voltage, V.
    pub grid_voltage_v: f64,
    pub grid_frequency_hz: f64,
    /// Lifetime energy at the first step, Wh.
    pub initial_energy_wh: f64,
    pub seed: u64,
}

impl Default for InverterParams {
    fn default() -> Self {
        InverterParams {
            rated_ac_w: 50_000.0,
            array_wp: 55_000.0,
            mpp_voltage_v: 620.0,
            sunrise_h: 6.0,
            sunset_h: 18.0,
            utc_offset_h: 0.0,
            cloudiness: 0.3,
            ambient_c: 20.0,
            grid_voltage_v: 230.0,
            grid_frequency_hz: 50.0,
            initial_energy_wh: 12_345_678.0,
            seed: 1,
        }
    }
}

/// Operating state reported in the status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Status {
    /// Night or stopped: not feeding.
    Standby = 0,
    /// Enough light to wake up, not yet feeding.
    Starting = 1,
    /// Feeding at the maximum power point.
    Running = 2,
    /// Feeding, but limited (power limit or temperature).
    Derated = 3,
    /// Stopped by a fault.
    Fault = 4,
}

/// Alarm bits in the alarm word.
pub mod alarm {
    pub const OVER_TEMPERATURE: u16 = 1 << 0;
    pub const GRID_FREQUENCY: u16 = 1 << 1;
    pub const GRID_VOLTAGE: u16 = 1 << 2;
    /// Injected: DC insulation resistance too low (stops the inverter).
    pub const INSULATION: u16 = 1 << 3;
    /// Injected: cooling fan failed (heatsink runs hotter).
    pub const FAN: u16 = 1 << 4;
}

/// Set points a SCADA system may write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Controls {
    /// Active power limit in % of the rating, 0-100.
    pub power_limit_pct: f64,
    /// Displacement power factor set point, 0.8-1.0.
    pub cos_phi: f64,
    /// Run command; false stops feeding.
    pub enabled: bool,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            power_limit_pct: 100.0,
            cos_phi: 1.0,
            enabled: true,
        }
    }
}

/// What the inverter measures at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct InverterState {
    pub ts_ms: i64,
    pub irradiance_w_m2: f64,
    pub dc_voltage_v: f64,
    pub dc_current_a: f64,
    pub dc_power_w: f64,
    pub ac_power_w: f64,
    pub reactive_power_var: f64,
    pub voltage_v: [f64; 3],
    pub current_a: [f64; 3],
    pub frequency_hz: f64,
    pub power_factor: f64,
    pub efficiency_pct: f64,
    pub heatsink_c: f64,
    pub energy_today_wh: f64,
    pub energy_total_wh: f64,
    pub status: Status,
    pub alarms: u16,
    pub grid_connected: bool,
    pub derating: bool,
}

/// One simulated inverter.
#[derive(Debug, Clone)]
pub struct SolarInverter {
    params: InverterParams,
    controls: Controls,
    injected: u16,
    rng: StdRng,
    /// Fraction of clear-sky irradiance that gets through, 0.15-1.
    cloud: f64,
    /// Grid frequency deviation from nominal, Hz.
    freq_dev: f64,
    local_day: Option<i64>,
    state: InverterState,
}

impl SolarInverter {
    pub fn new(params: InverterParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        let state = InverterState {
            ts_ms: 0,
            irradiance_w_m2: 0.0,
            dc_voltage_v: 0.0,
            dc_current_a: 0.0,
            dc_power_w: 0.0,
            ac_power_w: 0.0,
            reactive_power_var: 0.0,
            voltage_v: [params.grid_voltage_v; 3],
            current_a: [0.0; 3],
            frequency_hz: params.grid_frequency_hz,
            power_factor: 1.0,
            efficiency_pct: 0.0,
            heatsink_c: params.ambient_c,
            energy_today_wh: 0.0,
            energy_total_wh: params.initial_energy_wh,
            status: Status::Standby,
            alarms: 0,
            grid_connected: false,
            derating: false,
        };
        SolarInverter {
            params,
            controls: Controls::default(),
            injected: 0,
            rng,
            cloud: 1.0,
            freq_dev: 0.0,
            local_day: None,
            state,
        }
    }

    pub fn params(&self) -> &InverterParams {
        &self.params
    }

    pub fn state(&self) -> &InverterState {
        &self.state
    }

    pub fn controls(&self) -> Controls {
        self.controls
    }

    /// Applies new set points (clamped to their valid ranges).
    pub fn set_controls(&mut self, c: Controls) {
        self.controls = Controls {
            power_limit_pct: c.power_limit_pct.clamp(0.0, 100.0),
            cos_phi: c.cos_phi.clamp(0.8, 1.0),
            enabled: c.enabled,
        };
    }

    /// Turns injected faults ([`alarm::INSULATION`], [`alarm::FAN`]) on or off.
    pub fn set_fault(&mut self, bits: u16, on: bool) {
        let bits = bits & (alarm::INSULATION | alarm::FAN);
        if on {
            self.injected |= bits;
        } else {
            self.injected &= !bits;
        }
    }

    /// Clear-sky irradiance on the array at `ts_ms`, W/m².
    pub fn clear_sky(&self, ts_ms: i64) -> f64 {
        let local_ms = ts_ms + (self.params.utc_offset_h * 3_600_000.0) as i64;
        let hour = local_ms.rem_euclid(MS_PER_DAY) as f64 / 3_600_000.0;
        let (rise, set) = (self.params.sunrise_h, self.params.sunset_h);
        if hour <= rise || hour >= set || set <= rise {
            return 0.0;
        }
        let x = (hour - rise) / (set - rise);
        1000.0 * (std::f64::consts::PI * x).sin().powf(1.3)
    }

    /// A roughly normal number with mean 0 and deviation 1.
    fn gauss(&mut self) -> f64 {
        (0..6).map(|_| self.rng.random::<f64>()).sum::<f64>() * 2.0_f64.sqrt()
            - 6.0 / 2.0_f64.sqrt()
    }

    /// Advances the model to `ts_ms` (a step back in time is treated as no
    /// time passing) and returns the new state.
    pub fn step(&mut self, ts_ms: i64) -> &InverterState {
        let first = self.local_day.is_none();
        let dt_s = if first {
            0.0
        } else {
            ((ts_ms - self.state.ts_ms).max(0) as f64 / 1000.0).min(3600.0)
        };
        let p = self.params.clone();

        // Energy accrued since the last step at the last step's power.
        let accrued_wh = self.state.ac_power_w * dt_s / 3600.0;
        self.state.energy_total_wh += accrued_wh;
        let local_day = (ts_ms + (p.utc_offset_h * 3_600_000.0) as i64).div_euclid(MS_PER_DAY);
        if self.local_day == Some(local_day) {
            self.state.energy_today_wh += accrued_wh;
        } else {
            self.state.energy_today_wh = 0.0;
            self.local_day = Some(local_day);
        }

        // Clouds: a mean-reverting random walk in transmittance.
        if p.cloudiness > 0.0 && dt_s > 0.0 {
            let mean = 1.0 - 0.5 * p.cloudiness;
            let theta = 1.0 / 300.0;
            let sigma = 0.06 * p.cloudiness;
            let n = self.gauss();
            self.cloud += theta * (mean - self.cloud) * dt_s + sigma * dt_s.sqrt().min(5.0) * n;
            self.cloud = self.cloud.clamp(0.15, 1.0);
        }
        let irradiance = self.clear_sky(ts_ms) * self.cloud;

        // PV array at its maximum power point.
        let cell_c = p.ambient_c + 0.03 * irradiance;
        let temp_factor = 1.0 - 0.004 * (cell_c - 25.0);
        let dc_available = (irradiance / 1000.0 * p.array_wp * temp_factor).max(0.0);

        // Grid.
        self.freq_dev += -0.1 * self.freq_dev * dt_s.min(10.0) + 0.004 * self.gauss();
        self.freq_dev = self.freq_dev.clamp(-0.3, 0.3);
        let frequency = p.grid_frequency_hz + self.freq_dev;

        let faulted = self.injected & alarm::INSULATION != 0;
        let over_temp = self.state.heatsink_c > 75.0;
        let (status, ac_w, dc_w, derating) = if faulted {
            (Status::Fault, 0.0, 0.0, false)
        } else if !self.controls.enabled || irradiance < 10.0 {
            (Status::Standby, 0.0, 0.0, false)
        } else if irradiance < 30.0 {
            (Status::Starting, 0.0, 0.0, false)
        } else {
            let mut limit = p.rated_ac_w * self.controls.power_limit_pct / 100.0;
            if over_temp {
                limit = limit.min(p.rated_ac_w * 0.5);
            }
            let eff = efficiency(dc_available / p.rated_ac_w);
            let possible_ac = dc_available * eff;
            if possible_ac > limit {
                let dc = limit / eff;
                (Status::Derated, limit, dc, true)
            } else {
                (Status::Running, possible_ac, dc_available, false)
            }
        };

        let load = ac_w / p.rated_ac_w;
        let mut voltage = [0.0; 3];
        for v in &mut voltage {
            *v = p.grid_voltage_v + 3.0 * load + 0.8 * self.gauss();
        }
        let pf = if ac_w > 0.0 {
            self.controls.cos_phi
        } else {
            1.0
        };
        let apparent = if pf > 0.0 { ac_w / pf } else { 0.0 };
        let reactive = (apparent * apparent - ac_w * ac_w).max(0.0).sqrt();
        let mut current = [0.0; 3];
        for (i, c) in current.iter_mut().enumerate() {
            *c = if voltage[i] > 0.0 {
                apparent / 3.0 / voltage[i]
            } else {
                0.0
            };
        }

        let dc_v = if irradiance >= 10.0 && !faulted {
            let v = p.mpp_voltage_v
                * (1.0 - 0.0035 * (cell_c - 25.0))
                * (0.9 + 0.1 * (irradiance / 1000.0).min(1.2).sqrt());
            if ac_w == 0.0 {
                v * 1.2 // open circuit while not feeding
            } else {
                v
            }
        } else {
            0.0
        };
        let dc_a = if dc_v > 0.0 { dc_w / dc_v } else { 0.0 };

        // Heatsink: first-order lag (10 min) towards ambient + a load rise.
        let fan = if self.injected & alarm::FAN != 0 {
            2.0
        } else {
            1.0
        };
        let target = p.ambient_c + 40.0 * load * fan;
        let k = 1.0 - (-dt_s / 600.0).exp();
        let heatsink = if first {
            target
        } else {
            self.state.heatsink_c + (target - self.state.heatsink_c) * k
        };

        let mut alarms = self.injected;
        if heatsink > 75.0 {
            alarms |= alarm::OVER_TEMPERATURE;
        }
        if (frequency - p.grid_frequency_hz).abs() > 0.2 {
            alarms |= alarm::GRID_FREQUENCY;
        }
        if voltage
            .iter()
            .any(|v| (v - p.grid_voltage_v).abs() > 0.1 * p.grid_voltage_v)
        {
            alarms |= alarm::GRID_VOLTAGE;
        }

        let s = &mut self.state;
        s.ts_ms = ts_ms;
        s.irradiance_w_m2 = irradiance;
        s.dc_voltage_v = dc_v;
        s.dc_current_a = dc_a;
        s.dc_power_w = dc_w;
        s.ac_power_w = ac_w;
        s.reactive_power_var = reactive;
        s.voltage_v = voltage;
        s.current_a = current;
        s.frequency_hz = frequency;
        s.power_factor = pf;
        s.efficiency_pct = if dc_w > 0.0 { 100.0 * ac_w / dc_w } else { 0.0 };
        s.heatsink_c = heatsink;
        s.status = status;
        s.alarms = alarms;
        s.grid_connected = matches!(status, Status::Running | Status::Derated);
        s.derating = derating;
        &self.state
    }
}

/// Conversion efficiency at a DC load (fraction of the AC rating).
fn efficiency(load: f64) -> f64 {
    (0.982 - 0.06 * (-load / 0.08).exp()).clamp(0.5, 0.99)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// 2026-06-01T00:00:00Z.
    const MIDNIGHT: i64 = 1_780_272_000_000;

    fn clear() -> SolarInverter {
        SolarInverter::new(InverterParams {
            cloudiness: 0.0,
            ..InverterParams::default()
        })
    }

    #[test]
    fn night_is_standby_and_noon_feeds() {
        let mut inv = clear();
        let s = inv.step(MIDNIGHT + 2 * HOUR).clone();
        assert_eq!(s.status, Status::Standby);
        assert_eq!(
            (s.ac_power_w, s.irradiance_w_m2, s.dc_voltage_v),
            (0.0, 0.0, 0.0)
        );
        let s = inv.step(MIDNIGHT + 12 * HOUR).clone();
        assert!(
            (s.irradiance_w_m2 - 1000.0).abs() < 1.0,
            "{}",
            s.irradiance_w_m2
        );
        assert!(matches!(s.status, Status::Running | Status::Derated));
        assert!(
            s.ac_power_w > 40_000.0 && s.ac_power_w <= 50_000.0,
            "{}",
            s.ac_power_w
        );
        assert!(s.dc_power_w >= s.ac_power_w);
        assert!(s.efficiency_pct > 95.0 && s.efficiency_pct < 99.0);
        assert!((s.dc_current_a * s.dc_voltage_v - s.dc_power_w).abs() < 1e-6);
        assert!(s.grid_connected);
        // Three phases carry the power: P = sum(V * I) * pf.
        let p: f64 = (0..3).map(|i| s.voltage_v[i] * s.current_a[i]).sum();
        assert!((p - s.ac_power_w).abs() < 1e-6);
    }

    #[test]
    fn bell_curve_is_symmetric_and_peaks_at_noon() {
        let inv = clear();
        let at = |h: f64| inv.clear_sky(MIDNIGHT + (h * HOUR as f64) as i64);
        assert!((at(9.0) - at(15.0)).abs() < 1e-6);
        assert!(at(8.0) < at(10.0) && at(10.0) < at(12.0));
        assert_eq!(at(5.9), 0.0);
        assert_eq!(at(18.1), 0.0);
        let east = SolarInverter::new(InverterParams {
            utc_offset_h: 2.0,
            ..InverterParams::default()
        });
        assert!((east.clear_sky(MIDNIGHT + 10 * HOUR) - 1000.0).abs() < 1.0);
    }

    #[test]
    fn energy_counters_integrate_power_and_today_resets() {
        let mut inv = clear();
        let mut t = MIDNIGHT + 11 * HOUR;
        inv.step(t);
        let total0 = inv.state().energy_total_wh;
        let mut expected = 0.0;
        for _ in 0..600 {
            let p = inv.state().ac_power_w;
            t += 1000;
            inv.step(t);
            expected += p / 3600.0;
        }
        let s = inv.state().clone();
        assert!((s.energy_total_wh - total0 - expected).abs() < 1e-6);
        // About 10 minutes at ~48 kW: ~8 kWh.
        assert!(expected > 7_000.0 && expected < 8_500.0, "{expected}");
        assert!((s.energy_today_wh - expected).abs() < 1e-6);
        inv.step(MIDNIGHT + 24 * HOUR + 60_000);
        assert_eq!(inv.state().energy_today_wh, 0.0);
        assert!(inv.state().energy_total_wh >= s.energy_total_wh);
    }

    #[test]
    fn heatsink_lags_power() {
        let mut inv = clear();
        inv.step(MIDNIGHT + 3 * HOUR);
        let cold = inv.state().heatsink_c;
        inv.step(MIDNIGHT + 12 * HOUR - 60_000);
        let after_jump = inv.state().heatsink_c; // dt capped at 1 h: mostly warmed
        let mut t = MIDNIGHT + 12 * HOUR;
        inv.step(t);
        let t0 = inv.state().heatsink_c;
        inv.set_controls(Controls {
            enabled: false,
            ..Controls::default()
        });
        t += 60_000;
        inv.step(t);
        let t1 = inv.state().heatsink_c;
        assert!(cold < after_jump);
        // One minute after stopping: cooled a little, far from ambient.
        assert!(t1 < t0 && t1 > 20.0 + 0.8 * (t0 - 20.0), "{t0} -> {t1}");
    }

    #[test]
    fn power_limit_derates() {
        let mut inv = clear();
        inv.set_controls(Controls {
            power_limit_pct: 40.0,
            ..Controls::default()
        });
        let s = inv.step(MIDNIGHT + 12 * HOUR);
        assert_eq!(s.status, Status::Derated);
        assert!(s.derating);
        assert!((s.ac_power_w - 20_000.0).abs() < 1e-6);
        inv.set_controls(Controls {
            power_limit_pct: 100.0,
            cos_phi: 0.9,
            enabled: true,
        });
        let s = inv.step(MIDNIGHT + 12 * HOUR + 1000);
        assert!(s.reactive_power_var > 0.4 * s.ac_power_w);
        assert_eq!(s.power_factor, 0.9);
    }

    #[test]
    fn injected_faults_raise_alarms() {
        let mut inv = clear();
        inv.set_fault(alarm::INSULATION, true);
        let s = inv.step(MIDNIGHT + 12 * HOUR);
        assert_eq!(s.status, Status::Fault);
        assert_eq!(s.ac_power_w, 0.0);
        assert_ne!(s.alarms & alarm::INSULATION, 0);
        inv.set_fault(alarm::INSULATION, false);
        inv.set_fault(alarm::FAN, true);
        // With the fan failed, the heatsink heads for ambient + 80 K, trips
        // the over-temperature alarm, and the inverter halves its output.
        let mut t = MIDNIGHT + 11 * HOUR;
        let (mut saw_alarm, mut saw_derate) = (false, false);
        for _ in 0..120 {
            let hot = inv.state().alarms & alarm::OVER_TEMPERATURE != 0;
            t += 60_000;
            let s = inv.step(t);
            assert_ne!(s.alarms & alarm::FAN, 0);
            saw_alarm |= hot;
            if hot {
                assert!(s.ac_power_w <= 25_000.0 + 1e-6, "{}", s.ac_power_w);
                saw_derate = true;
            }
        }
        assert!(saw_alarm && saw_derate);
    }

    #[test]
    fn seeded_and_noisy() {
        let run = |seed| {
            let mut inv = SolarInverter::new(InverterParams {
                seed,
                cloudiness: 0.8,
                ..InverterParams::default()
            });
            (0..200)
                .map(|i| inv.step(MIDNIGHT + 12 * HOUR + i * 5000).ac_power_w)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let a = run(7);
        assert!(a.windows(2).any(|w| w[0] != w[1]), "clouds move");
        let mut inv = SolarInverter::new(InverterParams::default());
        let f: Vec<f64> = (0..100)
            .map(|i| inv.step(MIDNIGHT + i * 1000).frequency_hz)
            .collect();
        assert!(f.iter().all(|f| (f - 50.0).abs() < 0.3));
        assert!(f.windows(2).any(|w| w[0] != w[1]));
    }
}
