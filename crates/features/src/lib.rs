//! quantpipe's feature engine: indicator kernels that take one bar at a time, and feature sets
//! built from them. Batch computation is the streaming state run over a series — one code path for
//! training and for live serving.

pub mod candles;
pub mod cross;
pub mod kernels;
pub mod ticks;

use std::collections::VecDeque;

use kernels::*;
use quantpipe_core::parallel::{map_balanced, workers_for};
use quantpipe_core::Bars;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("feature set {file}: {message}")]
    InvalidSet { file: String, message: String },
    #[error("{indicator}: {message}")]
    InvalidParams { indicator: String, message: String },
}

/// One indicator with its parameters, as written in a feature-set file:
/// `[[feature]]` / `indicator = "rsi"` / `period = 14`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "indicator", rename_all = "snake_case", deny_unknown_fields)]
pub enum Indicator {
    Sma {
        period: usize,
    },
    Ema {
        period: usize,
    },
    Wma {
        period: usize,
    },
    Dema {
        period: usize,
    },
    Tema {
        period: usize,
    },
    Trix {
        period: usize,
    },
    Rsi {
        period: usize,
    },
    Cmo {
        period: usize,
    },
    Macd {
        fast: usize,
        slow: usize,
        signal: usize,
    },
    Apo {
        fast: usize,
        slow: usize,
    },
    Ppo {
        fast: usize,
        slow: usize,
    },
    Bbands {
        period: usize,
        nbdev: f64,
    },
    Stddev {
        period: usize,
        nbdev: f64,
    },
    Atr {
        period: usize,
    },
    Natr {
        period: usize,
    },
    Trange,
    Dmi {
        period: usize,
    },
    Stoch {
        fastk: usize,
        slowk: usize,
        slowd: usize,
    },
    Willr {
        period: usize,
    },
    Aroon {
        period: usize,
    },
    Cci {
        period: usize,
    },
    Mom {
        period: usize,
    },
    Roc {
        period: usize,
    },
    Obv,
    Ad,
    Adosc {
        fast: usize,
        slow: usize,
    },
    Mfi {
        period: usize,
    },
    Ultosc {
        period1: usize,
        period2: usize,
        period3: usize,
    },
    LogReturn {
        lag: usize,
    },
    RealizedVol {
        period: usize,
    },
    Kama {
        period: usize,
    },
    Adxr {
        period: usize,
    },
    Midpoint {
        period: usize,
    },
    Midprice {
        period: usize,
    },
    /// Balance of power, median, typical and weighted-close price of each bar.
    BarPrices,
    Keltner {
        period: usize,
        mult: f64,
    },
    Donchian {
        period: usize,
    },
    Vwap {
        period: usize,
    },
    SessionVwap,
    Zscore {
        period: usize,
    },
    VolumeZ {
        period: usize,
    },
    RangeVol {
        period: usize,
    },
    ReturnMoments {
        period: usize,
    },
    Calendar,
    Ichimoku {
        tenkan: usize,
        kijun: usize,
        senkou: usize,
    },
    /// TA-Lib's candlestick patterns: one column per pattern (±100, ±80, 0).
    Candles,
    /// Any features of a higher timeframe (e.g. `timeframe = "1h"`), joined as-of on each bar
    /// from the last higher-timeframe bar that had closed.
    Htf {
        timeframe: String,
        feature: Vec<Indicator>,
    },
    /// Classic, Fibonacci and Camarilla pivots of the previous UTC session.
    Pivots,
    /// Swing highs/lows with `k` bars each side, confirmed k bars later; nearest support/resistance.
    Swings {
        k: usize,
    },
    T3 {
        period: usize,
        vfactor: f64,
    },
    StochRsi {
        period: usize,
        fastk: usize,
        fastd: usize,
    },
    Sar {
        acceleration: f64,
        maximum: f64,
    },
}

/// How to compute one output with Python TA-Lib: `talib.<function>(*inputs, **kwargs)[output]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TalibCall {
    pub function: &'static str,
    pub inputs: Vec<&'static str>,
    pub kwargs: Vec<(&'static str, f64)>,
    /// Index in TA-Lib's result tuple (0 for single-output functions).
    pub output: usize,
}

/// A catalogue entry: what `quantpipe features list` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogueEntry {
    pub indicator: &'static str,
    pub family: &'static str,
    pub params: &'static str,
    pub outputs: &'static str,
    pub talib: &'static str,
}

pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry { indicator: "sma", family: "trend", params: "period", outputs: "sma_P", talib: "SMA" },
    CatalogueEntry { indicator: "ema", family: "trend", params: "period", outputs: "ema_P", talib: "EMA" },
    CatalogueEntry { indicator: "wma", family: "trend", params: "period", outputs: "wma_P", talib: "WMA" },
    CatalogueEntry { indicator: "dema", family: "trend", params: "period", outputs: "dema_P", talib: "DEMA" },
    CatalogueEntry { indicator: "tema", family: "trend", params: "period", outputs: "tema_P", talib: "TEMA" },
    CatalogueEntry { indicator: "trix", family: "momentum", params: "period", outputs: "trix_P", talib: "TRIX" },
    CatalogueEntry { indicator: "rsi", family: "momentum", params: "period", outputs: "rsi_P", talib: "RSI" },
    CatalogueEntry { indicator: "cmo", family: "momentum", params: "period", outputs: "cmo_P", talib: "CMO" },
    CatalogueEntry {
        indicator: "macd",
        family: "trend",
        params: "fast, slow, signal",
        outputs: "macd_F_S_G_{line,signal,hist}",
        talib: "MACD",
    },
    CatalogueEntry {
        indicator: "apo",
        family: "momentum",
        params: "fast, slow (SMA)",
        outputs: "apo_F_S",
        talib: "APO (matype 0)",
    },
    CatalogueEntry {
        indicator: "ppo",
        family: "momentum",
        params: "fast, slow (SMA)",
        outputs: "ppo_F_S",
        talib: "PPO (matype 0)",
    },
    CatalogueEntry {
        indicator: "bbands",
        family: "volatility",
        params: "period, nbdev",
        outputs: "bbands_P_D_{upper,middle,lower,pctb,width}",
        talib: "BBANDS (upper/middle/lower)",
    },
    CatalogueEntry {
        indicator: "stddev",
        family: "volatility",
        params: "period, nbdev",
        outputs: "stddev_P",
        talib: "STDDEV",
    },
    CatalogueEntry { indicator: "atr", family: "volatility", params: "period", outputs: "atr_P", talib: "ATR" },
    CatalogueEntry { indicator: "natr", family: "volatility", params: "period", outputs: "natr_P", talib: "NATR" },
    CatalogueEntry { indicator: "trange", family: "volatility", params: "", outputs: "trange", talib: "TRANGE" },
    CatalogueEntry {
        indicator: "dmi",
        family: "trend",
        params: "period",
        outputs: "dmi_P_{plus_di,minus_di,adx}",
        talib: "PLUS_DI, MINUS_DI, ADX",
    },
    CatalogueEntry {
        indicator: "stoch",
        family: "momentum",
        params: "fastk, slowk, slowd (SMA)",
        outputs: "stoch_K_S_D_{k,d}",
        talib: "STOCH",
    },
    CatalogueEntry { indicator: "willr", family: "momentum", params: "period", outputs: "willr_P", talib: "WILLR" },
    CatalogueEntry {
        indicator: "aroon",
        family: "trend",
        params: "period",
        outputs: "aroon_P_{down,up,osc}",
        talib: "AROON, AROONOSC",
    },
    CatalogueEntry { indicator: "cci", family: "momentum", params: "period", outputs: "cci_P", talib: "CCI" },
    CatalogueEntry { indicator: "mom", family: "momentum", params: "period", outputs: "mom_P", talib: "MOM" },
    CatalogueEntry { indicator: "roc", family: "momentum", params: "period", outputs: "roc_P", talib: "ROC" },
    CatalogueEntry { indicator: "obv", family: "volume", params: "", outputs: "obv", talib: "OBV" },
    CatalogueEntry { indicator: "ad", family: "volume", params: "", outputs: "ad", talib: "AD" },
    CatalogueEntry { indicator: "adosc", family: "volume", params: "fast, slow", outputs: "adosc_F_S", talib: "ADOSC" },
    CatalogueEntry { indicator: "mfi", family: "volume", params: "period", outputs: "mfi_P", talib: "MFI" },
    CatalogueEntry {
        indicator: "ultosc",
        family: "momentum",
        params: "period1, period2, period3",
        outputs: "ultosc_A_B_C",
        talib: "ULTOSC",
    },
    CatalogueEntry { indicator: "log_return", family: "returns", params: "lag", outputs: "log_return_L", talib: "" },
    CatalogueEntry {
        indicator: "realized_vol",
        family: "returns",
        params: "period",
        outputs: "realized_vol_P",
        talib: "",
    },
    CatalogueEntry {
        indicator: "candles",
        family: "candlestick",
        params: "",
        outputs: "cdl_{doji,hammer,engulfing,harami,hanging_man,shooting_star,inverted_hammer,dragonfly_doji,gravestone_doji,marubozu,spinning_top,morning_star,evening_star}",
        talib: "CDLDOJI, CDLHAMMER, CDLENGULFING, CDLHARAMI, CDLHANGINGMAN, CDLSHOOTINGSTAR, CDLINVERTEDHAMMER, CDLDRAGONFLYDOJI, CDLGRAVESTONEDOJI, CDLMARUBOZU, CDLSPINNINGTOP, CDLMORNINGSTAR, CDLEVENINGSTAR",
    },
    CatalogueEntry { indicator: "htf", family: "multi-timeframe", params: "timeframe, feature = [...]", outputs: "htf_TF_<inner outputs> (last closed higher-timeframe bar)", talib: "" },
    CatalogueEntry { indicator: "pivots", family: "structure", params: "", outputs: "pivot_{p,classic_r1..s2,fib_r1..s2,camarilla_r3,s3} (close's distance, previous UTC day)", talib: "" },
    CatalogueEntry { indicator: "swings", family: "structure", params: "k", outputs: "swing_K_{high,low,resistance,support} (confirmed k bars later)", talib: "" },
    CatalogueEntry { indicator: "t3", family: "trend", params: "period, vfactor", outputs: "t3_P_V", talib: "T3" },
    CatalogueEntry { indicator: "stoch_rsi", family: "momentum", params: "period, fastk, fastd (SMA)", outputs: "stochrsi_P_K_D_{k,d}", talib: "STOCHRSI" },
    CatalogueEntry { indicator: "sar", family: "trend", params: "acceleration, maximum", outputs: "sar_A_M", talib: "SAR" },
    CatalogueEntry { indicator: "kama", family: "trend", params: "period", outputs: "kama_P", talib: "KAMA" },
    CatalogueEntry { indicator: "adxr", family: "trend", params: "period", outputs: "adxr_P", talib: "ADXR" },
    CatalogueEntry {
        indicator: "midpoint",
        family: "trend",
        params: "period",
        outputs: "midpoint_P",
        talib: "MIDPOINT",
    },
    CatalogueEntry {
        indicator: "midprice",
        family: "trend",
        params: "period",
        outputs: "midprice_P",
        talib: "MIDPRICE",
    },
    CatalogueEntry {
        indicator: "bar_prices",
        family: "price",
        params: "",
        outputs: "bop, medprice, typprice, wclprice",
        talib: "BOP, MEDPRICE, TYPPRICE, WCLPRICE",
    },
    CatalogueEntry {
        indicator: "keltner",
        family: "volatility",
        params: "period, mult",
        outputs: "keltner_P_M_{upper,middle,lower}",
        talib: "",
    },
    CatalogueEntry {
        indicator: "donchian",
        family: "volatility",
        params: "period",
        outputs: "donchian_P_{upper,middle,lower}",
        talib: "",
    },
    CatalogueEntry {
        indicator: "vwap",
        family: "volume",
        params: "period",
        outputs: "vwap_P, vwap_P_dist (in σ)",
        talib: "",
    },
    CatalogueEntry {
        indicator: "session_vwap",
        family: "volume",
        params: "",
        outputs: "session_vwap (UTC day)",
        talib: "",
    },
    CatalogueEntry { indicator: "zscore", family: "returns", params: "period", outputs: "zscore_P", talib: "" },
    CatalogueEntry { indicator: "volume_z", family: "volume", params: "period", outputs: "volume_z_P", talib: "" },
    CatalogueEntry {
        indicator: "range_vol",
        family: "volatility",
        params: "period",
        outputs: "range_vol_P_{parkinson,garman_klass}",
        talib: "",
    },
    CatalogueEntry {
        indicator: "return_moments",
        family: "returns",
        params: "period",
        outputs: "return_moments_P_{skew,kurtosis}",
        talib: "",
    },
    CatalogueEntry {
        indicator: "calendar",
        family: "calendar",
        params: "",
        outputs: "calendar_{hour_sin,hour_cos,dow_sin,dow_cos}",
        talib: "",
    },
    CatalogueEntry {
        indicator: "ichimoku",
        family: "trend",
        params: "tenkan, kijun, senkou",
        outputs: "ichimoku_T_K_S_{tenkan,kijun,senkou_a,senkou_b} (no chikou)",
        talib: "",
    },
];

fn call(
    function: &'static str,
    inputs: &[&'static str],
    kwargs: &[(&'static str, f64)],
    output: usize,
) -> Option<TalibCall> {
    Some(TalibCall { function, inputs: inputs.to_vec(), kwargs: kwargs.to_vec(), output })
}

const C: &[&str] = &["close"];
const HLC: &[&str] = &["high", "low", "close"];

impl Indicator {
    /// Rejects parameters no kernel can run with.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |message: String| Err(FeatureError::InvalidParams { indicator: self.prefix(), message });
        let periods: Vec<usize> = match *self {
            Indicator::Macd { fast, slow, signal } => vec![fast, slow, signal],
            Indicator::Apo { fast, slow } | Indicator::Ppo { fast, slow } | Indicator::Adosc { fast, slow } => {
                vec![fast, slow]
            }
            Indicator::Stoch { fastk, slowk, slowd } => vec![fastk, slowk, slowd],
            Indicator::Ultosc { period1, period2, period3 } => vec![period1, period2, period3],
            Indicator::LogReturn { lag } => vec![lag],
            Indicator::Ichimoku { tenkan, kijun, senkou } => vec![tenkan, kijun, senkou],
            Indicator::Keltner { period, .. }
            | Indicator::Kama { period }
            | Indicator::Adxr { period }
            | Indicator::Midpoint { period }
            | Indicator::Midprice { period }
            | Indicator::Donchian { period }
            | Indicator::Vwap { period }
            | Indicator::Zscore { period }
            | Indicator::VolumeZ { period }
            | Indicator::RangeVol { period } => vec![period],
            Indicator::ReturnMoments { period } => vec![period.max(3)],
            Indicator::BarPrices | Indicator::SessionVwap | Indicator::Calendar | Indicator::Candles => vec![],
            Indicator::Htf { .. } | Indicator::Pivots => vec![],
            Indicator::Swings { k } => vec![k],
            Indicator::T3 { period, .. } => vec![period],
            Indicator::Sar { acceleration, maximum } => {
                if !(acceleration > 0.0 && maximum >= acceleration && maximum < 10.0) {
                    return bad(format!(
                        "acceleration {acceleration} and maximum {maximum}: need 0 < acceleration <= maximum"
                    ));
                }
                vec![]
            }
            Indicator::StochRsi { period, fastk, fastd } => vec![period.max(2), fastk, fastd],
            Indicator::Trange | Indicator::Obv | Indicator::Ad => vec![],
            Indicator::Sma { period }
            | Indicator::Ema { period }
            | Indicator::Wma { period }
            | Indicator::Dema { period }
            | Indicator::Tema { period }
            | Indicator::Trix { period }
            | Indicator::Rsi { period }
            | Indicator::Cmo { period }
            | Indicator::Bbands { period, .. }
            | Indicator::Stddev { period, .. }
            | Indicator::Atr { period }
            | Indicator::Natr { period }
            | Indicator::Dmi { period }
            | Indicator::Willr { period }
            | Indicator::Aroon { period }
            | Indicator::Cci { period }
            | Indicator::Mom { period }
            | Indicator::Roc { period }
            | Indicator::Mfi { period }
            | Indicator::RealizedVol { period } => vec![period],
        };
        if let Indicator::Htf { timeframe, feature } = self {
            let tf = quantpipe_core::Timeframe::parse(timeframe)
                .map_err(|e| FeatureError::InvalidParams { indicator: "htf".into(), message: e.to_string() })?;
            if tf.millis() > 7 * 86_400_000 {
                return bad(format!("timeframe {timeframe} is longer than a week"));
            }
            if feature.is_empty() {
                return bad("no features: add [[feature.feature]] tables".into());
            }
            for f in feature {
                if matches!(f, Indicator::Htf { .. }) {
                    return bad("a higher-timeframe feature cannot nest another".into());
                }
                f.validate()?;
            }
            return Ok(());
        }
        let min = match self {
            Indicator::Dmi { .. } | Indicator::RealizedVol { .. } | Indicator::Rsi { .. } | Indicator::Cmo { .. } => 2,
            _ => 1,
        };
        if let Some(p) = periods.iter().find(|&&p| p < min || p > 100_000) {
            return bad(format!("period {p} is out of range ({min} to 100000)"));
        }
        Ok(())
    }

    fn prefix(&self) -> String {
        match *self {
            Indicator::Sma { period } => format!("sma_{period}"),
            Indicator::Ema { period } => format!("ema_{period}"),
            Indicator::Wma { period } => format!("wma_{period}"),
            Indicator::Dema { period } => format!("dema_{period}"),
            Indicator::Tema { period } => format!("tema_{period}"),
            Indicator::Trix { period } => format!("trix_{period}"),
            Indicator::Rsi { period } => format!("rsi_{period}"),
            Indicator::Cmo { period } => format!("cmo_{period}"),
            Indicator::Macd { fast, slow, signal } => format!("macd_{fast}_{slow}_{signal}"),
            Indicator::Apo { fast, slow } => format!("apo_{fast}_{slow}"),
            Indicator::Ppo { fast, slow } => format!("ppo_{fast}_{slow}"),
            Indicator::Bbands { period, nbdev } => format!("bbands_{period}_{nbdev}"),
            Indicator::Stddev { period, nbdev } => format!("stddev_{period}_{nbdev}"),
            Indicator::Atr { period } => format!("atr_{period}"),
            Indicator::Natr { period } => format!("natr_{period}"),
            Indicator::Trange => "trange".into(),
            Indicator::Dmi { period } => format!("dmi_{period}"),
            Indicator::Stoch { fastk, slowk, slowd } => format!("stoch_{fastk}_{slowk}_{slowd}"),
            Indicator::Willr { period } => format!("willr_{period}"),
            Indicator::Aroon { period } => format!("aroon_{period}"),
            Indicator::Cci { period } => format!("cci_{period}"),
            Indicator::Mom { period } => format!("mom_{period}"),
            Indicator::Roc { period } => format!("roc_{period}"),
            Indicator::Obv => "obv".into(),
            Indicator::Ad => "ad".into(),
            Indicator::Adosc { fast, slow } => format!("adosc_{fast}_{slow}"),
            Indicator::Mfi { period } => format!("mfi_{period}"),
            Indicator::Ultosc { period1, period2, period3 } => format!("ultosc_{period1}_{period2}_{period3}"),
            Indicator::LogReturn { lag } => format!("log_return_{lag}"),
            Indicator::RealizedVol { period } => format!("realized_vol_{period}"),
            Indicator::Kama { period } => format!("kama_{period}"),
            Indicator::Adxr { period } => format!("adxr_{period}"),
            Indicator::Midpoint { period } => format!("midpoint_{period}"),
            Indicator::Midprice { period } => format!("midprice_{period}"),
            Indicator::BarPrices => "bar".into(),
            Indicator::Keltner { period, mult } => format!("keltner_{period}_{mult}"),
            Indicator::Donchian { period } => format!("donchian_{period}"),
            Indicator::Vwap { period } => format!("vwap_{period}"),
            Indicator::SessionVwap => "session_vwap".into(),
            Indicator::Zscore { period } => format!("zscore_{period}"),
            Indicator::VolumeZ { period } => format!("volume_z_{period}"),
            Indicator::RangeVol { period } => format!("range_vol_{period}"),
            Indicator::ReturnMoments { period } => format!("return_moments_{period}"),
            Indicator::Calendar => "calendar".into(),
            Indicator::Candles => "cdl".into(),
            Indicator::Htf { ref timeframe, .. } => format!("htf_{timeframe}"),
            Indicator::Pivots => "pivot".into(),
            Indicator::Swings { k } => format!("swing_{k}"),
            Indicator::T3 { period, vfactor } => format!("t3_{period}_{vfactor}"),
            Indicator::Sar { acceleration, maximum } => format!("sar_{acceleration}_{maximum}"),
            Indicator::StochRsi { period, fastk, fastd } => format!("stochrsi_{period}_{fastk}_{fastd}"),
            Indicator::Ichimoku { tenkan, kijun, senkou } => format!("ichimoku_{tenkan}_{kijun}_{senkou}"),
        }
    }

    /// Output column names, in kernel output order.
    pub fn outputs(&self) -> Vec<String> {
        let p = self.prefix();
        let with = |suffixes: &[&str]| suffixes.iter().map(|s| format!("{p}_{s}")).collect();
        match self {
            Indicator::Macd { .. } => with(&["line", "signal", "hist"]),
            Indicator::Bbands { .. } => with(&["upper", "middle", "lower", "pctb", "width"]),
            Indicator::Dmi { .. } => with(&["plus_di", "minus_di", "adx"]),
            Indicator::Stoch { .. } => with(&["k", "d"]),
            Indicator::Aroon { .. } => with(&["down", "up", "osc"]),
            Indicator::BarPrices => ["bop", "medprice", "typprice", "wclprice"].iter().map(|s| s.to_string()).collect(),
            Indicator::Keltner { .. } | Indicator::Donchian { .. } => with(&["upper", "middle", "lower"]),
            Indicator::Vwap { .. } => vec![p.clone(), format!("{p}_dist")],
            Indicator::RangeVol { .. } => with(&["parkinson", "garman_klass"]),
            Indicator::ReturnMoments { .. } => with(&["skew", "kurtosis"]),
            Indicator::Calendar => with(&["hour_sin", "hour_cos", "dow_sin", "dow_cos"]),
            Indicator::Candles => candles::Pattern::ALL.iter().map(|p| p.name().to_string()).collect(),
            Indicator::Pivots => with(&[
                "p",
                "classic_r1",
                "classic_s1",
                "classic_r2",
                "classic_s2",
                "fib_r1",
                "fib_s1",
                "fib_r2",
                "fib_s2",
                "camarilla_r3",
                "camarilla_s3",
            ]),
            Indicator::Swings { .. } => with(&["high", "low", "resistance", "support"]),
            Indicator::StochRsi { .. } => with(&["k", "d"]),
            Indicator::Htf { feature, .. } => {
                feature.iter().flat_map(|f| f.outputs()).map(|name| format!("{p}_{name}")).collect()
            }
            Indicator::Ichimoku { .. } => with(&["tenkan", "kijun", "senkou_a", "senkou_b"]),
            _ => vec![p],
        }
    }

    /// The TA-Lib call that computes each output (None where TA-Lib has no equivalent).
    pub fn talib(&self) -> Vec<Option<TalibCall>> {
        let per = |n: usize| n as f64;
        match *self {
            Indicator::Sma { period } => vec![call("SMA", C, &[("timeperiod", per(period))], 0)],
            Indicator::Ema { period } => vec![call("EMA", C, &[("timeperiod", per(period))], 0)],
            Indicator::Wma { period } => vec![call("WMA", C, &[("timeperiod", per(period))], 0)],
            Indicator::Dema { period } => vec![call("DEMA", C, &[("timeperiod", per(period))], 0)],
            Indicator::Tema { period } => vec![call("TEMA", C, &[("timeperiod", per(period))], 0)],
            Indicator::Trix { period } => vec![call("TRIX", C, &[("timeperiod", per(period))], 0)],
            Indicator::Rsi { period } => vec![call("RSI", C, &[("timeperiod", per(period))], 0)],
            Indicator::Cmo { period } => vec![call("CMO", C, &[("timeperiod", per(period))], 0)],
            Indicator::Macd { fast, slow, signal } => {
                let kw = [("fastperiod", per(fast)), ("slowperiod", per(slow)), ("signalperiod", per(signal))];
                (0..3).map(|o| call("MACD", C, &kw, o)).collect()
            }
            Indicator::Apo { fast, slow } => {
                vec![call("APO", C, &[("fastperiod", per(fast)), ("slowperiod", per(slow)), ("matype", 0.0)], 0)]
            }
            Indicator::Ppo { fast, slow } => {
                vec![call("PPO", C, &[("fastperiod", per(fast)), ("slowperiod", per(slow)), ("matype", 0.0)], 0)]
            }
            Indicator::Bbands { period, nbdev } => {
                let kw = [("timeperiod", per(period)), ("nbdevup", nbdev), ("nbdevdn", nbdev), ("matype", 0.0)];
                let mut v: Vec<Option<TalibCall>> = (0..3).map(|o| call("BBANDS", C, &kw, o)).collect();
                v.extend([None, None]);
                v
            }
            Indicator::Stddev { period, nbdev } => {
                vec![call("STDDEV", C, &[("timeperiod", per(period)), ("nbdev", nbdev)], 0)]
            }
            Indicator::Atr { period } => vec![call("ATR", HLC, &[("timeperiod", per(period))], 0)],
            Indicator::Natr { period } => vec![call("NATR", HLC, &[("timeperiod", per(period))], 0)],
            Indicator::Trange => vec![call("TRANGE", HLC, &[], 0)],
            Indicator::Dmi { period } => {
                let kw = [("timeperiod", per(period))];
                vec![call("PLUS_DI", HLC, &kw, 0), call("MINUS_DI", HLC, &kw, 0), call("ADX", HLC, &kw, 0)]
            }
            Indicator::Stoch { fastk, slowk, slowd } => {
                let kw = [
                    ("fastk_period", per(fastk)),
                    ("slowk_period", per(slowk)),
                    ("slowk_matype", 0.0),
                    ("slowd_period", per(slowd)),
                    ("slowd_matype", 0.0),
                ];
                (0..2).map(|o| call("STOCH", HLC, &kw, o)).collect()
            }
            Indicator::Willr { period } => vec![call("WILLR", HLC, &[("timeperiod", per(period))], 0)],
            Indicator::Aroon { period } => {
                let kw = [("timeperiod", per(period))];
                vec![
                    call("AROON", &["high", "low"], &kw, 0),
                    call("AROON", &["high", "low"], &kw, 1),
                    call("AROONOSC", &["high", "low"], &kw, 0),
                ]
            }
            Indicator::Cci { period } => vec![call("CCI", HLC, &[("timeperiod", per(period))], 0)],
            Indicator::Mom { period } => vec![call("MOM", C, &[("timeperiod", per(period))], 0)],
            Indicator::Roc { period } => vec![call("ROC", C, &[("timeperiod", per(period))], 0)],
            Indicator::Obv => vec![call("OBV", &["close", "volume"], &[], 0)],
            Indicator::Ad => vec![call("AD", &["high", "low", "close", "volume"], &[], 0)],
            Indicator::Adosc { fast, slow } => vec![call(
                "ADOSC",
                &["high", "low", "close", "volume"],
                &[("fastperiod", per(fast)), ("slowperiod", per(slow))],
                0,
            )],
            Indicator::Mfi { period } => {
                vec![call("MFI", &["high", "low", "close", "volume"], &[("timeperiod", per(period))], 0)]
            }
            Indicator::Ultosc { period1, period2, period3 } => vec![call(
                "ULTOSC",
                HLC,
                &[("timeperiod1", per(period1)), ("timeperiod2", per(period2)), ("timeperiod3", per(period3))],
                0,
            )],
            Indicator::Kama { period } => vec![call("KAMA", C, &[("timeperiod", per(period))], 0)],
            Indicator::Adxr { period } => vec![call("ADXR", HLC, &[("timeperiod", per(period))], 0)],
            Indicator::Midpoint { period } => vec![call("MIDPOINT", C, &[("timeperiod", per(period))], 0)],
            Indicator::Midprice { period } => {
                vec![call("MIDPRICE", &["high", "low"], &[("timeperiod", per(period))], 0)]
            }
            Indicator::BarPrices => vec![
                call("BOP", &["open", "high", "low", "close"], &[], 0),
                call("MEDPRICE", &["high", "low"], &[], 0),
                call("TYPPRICE", HLC, &[], 0),
                call("WCLPRICE", HLC, &[], 0),
            ],
            Indicator::Candles => candles::Pattern::ALL
                .iter()
                .map(|p| {
                    let stars = matches!(p, candles::Pattern::MorningStar | candles::Pattern::EveningStar);
                    let kwargs: &[(&str, f64)] = if stars { &[("penetration", 0.3)] } else { &[] };
                    call(p.talib(), &["open", "high", "low", "close"], kwargs, 0)
                })
                .collect(),
            Indicator::Sar { acceleration, maximum } => {
                vec![call("SAR", &["high", "low"], &[("acceleration", acceleration), ("maximum", maximum)], 0)]
            }
            Indicator::T3 { period, vfactor } => {
                vec![call("T3", C, &[("timeperiod", per(period)), ("vfactor", vfactor)], 0)]
            }
            Indicator::StochRsi { period, fastk, fastd } => {
                let kw = [
                    ("timeperiod", per(period)),
                    ("fastk_period", per(fastk)),
                    ("fastd_period", per(fastd)),
                    ("fastd_matype", 0.0),
                ];
                (0..2).map(|o| call("STOCHRSI", C, &kw, o)).collect()
            }
            _ => self.outputs().iter().map(|_| None).collect(),
        }
    }

    /// The streaming kernel of this indicator.
    pub fn kernel(&self) -> Box<dyn Kernel> {
        match *self {
            Indicator::Sma { period } => Box::new(SmaK { sma: Sma::new(period) }),
            Indicator::Ema { period } => Box::new(EmaK { ema: Ema::new(period) }),
            Indicator::Wma { period } => Box::new(WmaK { wma: Wma::new(period) }),
            Indicator::Dema { period } => Box::new(MultiEma { emas: vec![Ema::new(period), Ema::new(period)] }),
            Indicator::Tema { period } => {
                Box::new(MultiEma { emas: vec![Ema::new(period), Ema::new(period), Ema::new(period)] })
            }
            Indicator::Trix { period } => {
                Box::new(Trix { emas: [Ema::new(period), Ema::new(period), Ema::new(period)], prev: f64::NAN })
            }
            Indicator::Rsi { period } => Box::new(GainLoss::new(period, false)),
            Indicator::Cmo { period } => Box::new(GainLoss::new(period, true)),
            Indicator::Macd { fast, slow, signal } => Box::new(Macd::new(fast, slow, signal)),
            Indicator::Apo { fast, slow } => {
                Box::new(PriceOsc { fast: Sma::new(fast), slow: Sma::new(slow), percent: false })
            }
            Indicator::Ppo { fast, slow } => {
                Box::new(PriceOsc { fast: Sma::new(fast), slow: Sma::new(slow), percent: true })
            }
            Indicator::Bbands { period, nbdev } => {
                Box::new(Bbands { sma: Sma::new(period), var: Var::new(period), up: nbdev, down: nbdev })
            }
            Indicator::Stddev { period, nbdev } => Box::new(StdDev { var: Var::new(period), nbdev }),
            Indicator::Atr { period } => Box::new(Atr::new(period, 1)),
            Indicator::Natr { period } => Box::new(Atr::new(period, 2)),
            Indicator::Trange => Box::new(Atr::new(1, 0)),
            Indicator::Dmi { period } => Box::new(Dmi::new(period)),
            Indicator::Stoch { fastk, slowk, slowd } => {
                Box::new(Stoch { range: RollingExtremes::new(fastk), slow_k: Sma::new(slowk), slow_d: Sma::new(slowd) })
            }
            Indicator::Willr { period } => Box::new(Willr { range: RollingExtremes::new(period) }),
            Indicator::Aroon { period } => Box::new(Aroon { n: period, range: MinMax::new(period + 1) }),
            Indicator::Cci { period } => Box::new(Cci { n: period, buffer: Vec::new(), next: 0, seen: 0 }),
            Indicator::Mom { period } => Box::new(Change { earlier: DelayLine::new(period), percent: false }),
            Indicator::Roc { period } => Box::new(Change { earlier: DelayLine::new(period), percent: true }),
            Indicator::Obv => Box::new(Obv { prev: None }),
            Indicator::Ad => Box::new(Ad { ad: 0.0 }),
            Indicator::Adosc { fast, slow } => Box::new(Adosc {
                ad: 0.0,
                k_fast: 2.0 / (fast as f64 + 1.0),
                k_slow: 2.0 / (slow as f64 + 1.0),
                fast: 0.0,
                slow: 0.0,
                seen: 0,
                lookback: fast.max(slow) - 1,
            }),
            Indicator::Mfi { period } => {
                Box::new(Mfi { n: period, prev_tp: f64::NAN, flows: VecDeque::new(), pos: 0.0, neg: 0.0, null_run: 0 })
            }
            Indicator::Ultosc { period1, period2, period3 } => {
                let mut periods = [period1, period2, period3];
                periods.sort_unstable();
                Box::new(Ultosc { periods, prev_close: f64::NAN, window: VecDeque::new(), sums: [(0.0, 0.0); 3] })
            }
            Indicator::LogReturn { lag } => Box::new(LogReturn { earlier: DelayLine::new(lag) }),
            Indicator::RealizedVol { period } => {
                Box::new(RealizedVol { n: period, prev: f64::NAN, returns: Rolling::new(period) })
            }
            Indicator::Kama { period } => {
                Box::new(Kama { n: period, window: VecDeque::new(), sum_roc: 0.0, kama: 0.0 })
            }
            Indicator::Adxr { period } => Box::new(Adxr { dmi: Dmi::new(period), adx: VecDeque::new(), n: period }),
            Indicator::Midpoint { period } => Box::new(Mid { range: RollingExtremes::new(period), use_close: true }),
            Indicator::Midprice { period } => Box::new(Mid { range: RollingExtremes::new(period), use_close: false }),
            Indicator::BarPrices => Box::new(BarPrices),
            Indicator::Keltner { period, mult } => {
                Box::new(Keltner { ema: Ema::new(period), atr: Atr::new(period, 1), mult })
            }
            Indicator::Donchian { period } => Box::new(Donchian { range: RollingExtremes::new(period) }),
            Indicator::Vwap { period } => Box::new(RollingVwap { n: period, window: Rolling::new(period) }),
            Indicator::SessionVwap => Box::new(SessionVwap { day: i64::MIN, pv: 0.0, v: 0.0 }),
            Indicator::Zscore { period } => {
                Box::new(ZScore { n: period, input: ZInput::Close, window: Rolling::new(period) })
            }
            Indicator::VolumeZ { period } => {
                Box::new(ZScore { n: period, input: ZInput::Volume, window: Rolling::new(period) })
            }
            Indicator::RangeVol { period } => Box::new(RangeVol { n: period, window: Rolling::new(period) }),
            Indicator::ReturnMoments { period } => {
                Box::new(ReturnMoments { n: period, prev: f64::NAN, returns: Rolling::new(period) })
            }
            Indicator::Calendar => Box::new(Calendar::default()),
            Indicator::Htf { ref timeframe, ref feature } => {
                let step_ms = quantpipe_core::Timeframe::parse(timeframe).map(|t| t.millis()).unwrap_or(3_600_000);
                let inner: Vec<Box<dyn Kernel>> = feature.iter().map(|f| f.kernel()).collect();
                let width = inner.iter().map(|k| k.width()).sum();
                Box::new(HigherTimeframe {
                    step_ms,
                    inner,
                    width,
                    bucket: None,
                    base_step: None,
                    last_ts: None,
                    values: vec![f64::NAN; width],
                })
            }
            Indicator::Sar { acceleration, maximum } => Box::new(Sar {
                accel: acceleration,
                max: maximum,
                first: None,
                started: false,
                long: true,
                sar: 0.0,
                ep: 0.0,
                af: 0.0,
                last: (0.0, 0.0),
            }),
            Indicator::T3 { period, vfactor } => {
                Box::new(T3 { n: period, k: 2.0 / (period as f64 + 1.0), v: vfactor, stages: [(0, 0.0, 0.0); 6] })
            }
            Indicator::StochRsi { period, fastk, fastd } => Box::new(StochRsi {
                rsi: GainLoss::new(period, false),
                range: RollingExtremes::new(fastk),
                fast_d: Sma::new(fastd),
            }),
            Indicator::Pivots => Box::new(Pivots { day: i64::MIN, current: None, previous: None }),
            Indicator::Swings { k } => {
                Box::new(Swings { k, window: VecDeque::new(), highs: VecDeque::new(), lows: VecDeque::new() })
            }
            Indicator::Candles => Box::new(candles::PatternSet::new(&candles::Pattern::ALL)),
            Indicator::Ichimoku { tenkan, kijun, senkou } => Box::new(Ichimoku {
                tenkan: RollingExtremes::new(tenkan),
                kijun: RollingExtremes::new(kijun),
                senkou: RollingExtremes::new(senkou),
                shift: kijun,
                pending: VecDeque::new(),
            }),
        }
    }
}

/// A named list of indicators. Its hash identifies exactly what was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSet {
    pub name: String,
    #[serde(rename = "feature")]
    pub features: Vec<Indicator>,
}

impl FeatureSet {
    /// Parses a feature-set TOML file (`name = "…"` and `[[feature]]` tables).
    pub fn from_toml(file: &str, text: &str) -> Result<FeatureSet, FeatureError> {
        let set: FeatureSet =
            toml::from_str(text).map_err(|e| FeatureError::InvalidSet { file: file.into(), message: e.to_string() })?;
        for f in &set.features {
            f.validate().map_err(|e| FeatureError::InvalidSet { file: file.into(), message: e.to_string() })?;
        }
        if set.features.is_empty() {
            return Err(FeatureError::InvalidSet { file: file.into(), message: "no [[feature]] entries".into() });
        }
        Ok(set)
    }

    pub fn columns(&self) -> Vec<String> {
        self.features.iter().flat_map(|f| f.outputs()).collect()
    }

    /// blake3 of the canonical JSON of the indicators (order matters: it is the column order).
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(&self.features).unwrap_or_default();
        blake3::hash(&json).to_hex()[..16].to_string()
    }

    /// The built-in `standard` set.
    pub fn standard() -> FeatureSet {
        use Indicator::*;
        let mut f = Vec::new();
        for period in [5, 10, 20, 50, 100, 200] {
            f.push(Sma { period });
            f.push(Ema { period });
        }
        f.extend([
            Wma { period: 10 },
            Wma { period: 20 },
            Dema { period: 20 },
            Tema { period: 20 },
            Trix { period: 15 },
        ]);
        f.extend([Rsi { period: 7 }, Rsi { period: 14 }, Rsi { period: 21 }, Cmo { period: 14 }]);
        f.extend([Macd { fast: 12, slow: 26, signal: 9 }, Apo { fast: 12, slow: 26 }, Ppo { fast: 12, slow: 26 }]);
        f.extend([Bbands { period: 20, nbdev: 2.0 }, Stddev { period: 20, nbdev: 1.0 }]);
        f.extend([Atr { period: 14 }, Natr { period: 14 }, Trange, Dmi { period: 14 }]);
        f.extend([
            Stoch { fastk: 14, slowk: 3, slowd: 3 },
            Willr { period: 14 },
            Aroon { period: 25 },
            Cci { period: 20 },
        ]);
        f.extend([Mom { period: 10 }, Roc { period: 1 }, Roc { period: 5 }, Roc { period: 10 }, Roc { period: 20 }]);
        f.extend([Obv, Ad, Adosc { fast: 3, slow: 10 }, Mfi { period: 14 }]);
        f.push(Ultosc { period1: 7, period2: 14, period3: 28 });
        for lag in [1, 5, 15, 60] {
            f.push(LogReturn { lag });
        }
        f.extend([RealizedVol { period: 20 }, RealizedVol { period: 60 }]);
        f.extend([Kama { period: 10 }, Kama { period: 30 }, Adxr { period: 14 }, Midpoint { period: 14 }]);
        f.extend([Midprice { period: 14 }, BarPrices, Atr { period: 7 }, Atr { period: 21 }]);
        f.extend([Cci { period: 14 }, Willr { period: 28 }, Mom { period: 1 }, Mom { period: 5 }]);
        f.extend([Keltner { period: 20, mult: 2.0 }, Donchian { period: 20 }, Vwap { period: 20 }, SessionVwap]);
        f.extend([Zscore { period: 20 }, Zscore { period: 60 }, VolumeZ { period: 20 }, VolumeZ { period: 60 }]);
        f.extend([RangeVol { period: 20 }, ReturnMoments { period: 60 }, Calendar]);
        f.push(Ichimoku { tenkan: 9, kijun: 26, senkou: 52 });
        f.push(Candles);
        f.extend([Pivots, Swings { k: 5 }]);
        f.extend([T3 { period: 5, vfactor: 0.7 }, StochRsi { period: 14, fastk: 5, fastd: 3 }]);
        f.push(Sar { acceleration: 0.02, maximum: 0.2 });
        f.push(Htf {
            timeframe: "1h".into(),
            feature: vec![Rsi { period: 14 }, Atr { period: 14 }, Ema { period: 20 }, LogReturn { lag: 1 }],
        });
        f.push(Htf {
            timeframe: "1d".into(),
            feature: vec![Rsi { period: 14 }, Atr { period: 14 }, RealizedVol { period: 20 }],
        });
        FeatureSet { name: "standard".into(), features: f }
    }
}

/// Streaming state of a whole feature set for one symbol: push a bar, read the row.
pub struct FeatureState {
    kernels: Vec<(Box<dyn Kernel>, usize)>,
    row: Vec<f64>,
}

impl FeatureState {
    pub fn new(set: &FeatureSet) -> FeatureState {
        let mut offset = 0;
        let kernels = set
            .features
            .iter()
            .map(|f| {
                let k = f.kernel();
                let at = offset;
                offset += k.width();
                (k, at)
            })
            .collect();
        FeatureState { kernels, row: vec![f64::NAN; offset] }
    }

    /// Consumes the next bar; returns the features at this bar (NaN while warming up).
    pub fn update(&mut self, bar: &Bar) -> &[f64] {
        for (k, at) in &mut self.kernels {
            let w = k.width();
            k.update(bar, &mut self.row[*at..*at + w]);
        }
        &self.row
    }
}

/// Features in columns, aligned with the bars they were computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureFrame {
    pub ts: Vec<i64>,
    pub names: Vec<String>,
    pub columns: Vec<Vec<f64>>,
}

/// Batch computation: each indicator's streaming kernel run over the whole series (the one code
/// path). Kernel by kernel rather than bar by bar, so each kernel's state stays hot in cache; the
/// values are the same bits either way (tested against `FeatureState`).
pub fn compute(set: &FeatureSet, bars: &Bars) -> FeatureFrame {
    compute_with_threads(set, bars, workers_for(set.features.len()))
}

/// [`compute`] over `threads` threads: each indicator's kernel runs over every bar on one thread
/// (indicators are independent), so the frame is the same whatever the thread count.
pub fn compute_with_threads(set: &FeatureSet, bars: &Bars, threads: usize) -> FeatureFrame {
    // Output count as the cost estimate: the candlestick set (13 outputs) starts first, not last.
    let per_indicator = map_balanced(
        &set.features,
        threads,
        |feature| feature.outputs().len() as u64,
        |_, feature| feature.kernel().run(bars),
    );
    FeatureFrame { ts: bars.ts.clone(), names: set.columns(), columns: per_indicator.into_iter().flatten().collect() }
}

/// `compute` for many series at once, spread over `threads` OS threads (the machine's core count
/// when 0). Each series is still computed by the same single code path; results keep input order.
pub fn compute_many(set: &FeatureSet, series: &[&Bars], threads: usize) -> Vec<FeatureFrame> {
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
    let threads = threads.clamp(1, series.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<FeatureFrame>> = (0..series.len()).map(|_| None).collect();
    let results = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= series.len() {
                    break;
                }
                // Series are the unit of parallelism here; each is computed on one thread.
                let frame = compute_with_threads(set, series[i], 1);
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(frame);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|f| f.unwrap_or_else(|| FeatureFrame { ts: vec![], names: vec![], columns: vec![] }))
        .collect()
}
