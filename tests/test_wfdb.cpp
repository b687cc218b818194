// WFDB headers and signal formats: every real record in tests/data/ecg (checksums prove the
// decoding), header oddities, and synthetic files in every supported format.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "records/wfdb.hpp"
#include "tests/support/process.hpp"

namespace ecgq::wfdb {
namespace {

struct Expect {
  std::string record;
  int n_signals;
  double fs;
  int64_t n_samples;
  std::string first_lead, last_lead;
  int format;
  int64_t offset;
  double gain0, baseline0;
  std::string units0;
  size_t n_files;
};

// Values as the headers and tests/data/ecg/README.md give them.
const std::vector<Expect> kRecords = {
    {"s0010_re", 15, 1000, 38400, "i", "vz", 16, 0, 2000, 0, "mV", 2},
    {"HR06000", 12, 500, 5000, "I", "V6", 16, 24, 1000, 0, "mv", 1},
    {"HR06002", 12, 500, 5000, "I", "V6", 16, 24, 1000, 0, "mv", 1},
    {"E07500", 12, 500, 5000, "I", "V6", 16, 24, 1000, 0, "mV", 1},
    {"E07509", 12, 500, 5000, "I", "V6", 16, 24, 1000, 0, "mV", 1},
    {"JS20000", 12, 500, 5000, "I", "V6", 16, 24, 1000, 0, "mV", 1},
    {"JS20004", 12, 500, 5000, "I", "V6", 16, 24, 1000, 0, "mV", 1},
    {"1", 12, 500, 5000, "i", "v6", 16, 0, 1716, 6, "mV", 1},
    {"51", 12, 500, 5000, "i", "v6", 16, 0, 2933, 1, "mV", 1},
    {"34", 12, 500, 5000, "i", "v6", 16, 0, 3115, 12, "mV", 1},
    {"00001_lr", 12, 100, 1000, "I", "V6", 16, 0, 1000, 0, "mV", 1},
    {"208", 2, 360, 650000, "MLII", "V1", 212, 0, 200, 1024, "mV", 1},
    {"data_101_6", 2, 200, 22355, "I", "II", 16, 0, 30061.276794035417, -161790, "mV", 1},
    {"v102s", 4, 250, 75000, "II", "RESP", 212, 0, 2281, 0, "mV", 1},
};

TEST(Wfdb, EveryRealRecordDecodesWithMatchingChecksums) {
  for (const Expect& e : kRecords) {
    SCOPED_TRACE(e.record);
    auto h = read_header(test::data_path("ecg/" + e.record + ".hea"));
    ASSERT_TRUE(h.ok()) << h.status().to_string();
    EXPECT_EQ(h->n_signals, e.n_signals);
    ASSERT_EQ(h->signals.size(), static_cast<size_t>(e.n_signals));
    EXPECT_EQ(h->fs, e.fs);
    EXPECT_EQ(h->n_samples, e.n_samples);
    EXPECT_EQ(h->signals.front().description, e.first_lead);
    EXPECT_EQ(h->signals.back().description, e.last_lead);
    EXPECT_EQ(h->signals[0].format, e.format);
    EXPECT_EQ(h->signals[0].byte_offset, e.offset);
    EXPECT_DOUBLE_EQ(h->signals[0].gain, e.gain0);
    EXPECT_DOUBLE_EQ(h->signals[0].baseline, e.baseline0);
    EXPECT_EQ(h->signals[0].units, e.units0);
    std::set<std::string> files;
    for (const auto& s : h->signals) {
      files.insert(s.file_name);
      EXPECT_TRUE(s.checksum.has_value());
      EXPECT_TRUE(s.initial_value.has_value());
    }
    EXPECT_EQ(files.size(), e.n_files);
    // kError: any initial value or checksum mismatch fails the read.
    auto sig = read_signals(h.value(), test::data_path("ecg"), ChecksumPolicy::kError);
    ASSERT_TRUE(sig.ok()) << sig.status().to_string();
    EXPECT_EQ(sig->n_samples, e.n_samples);
    ASSERT_EQ(sig->samples.size(), static_cast<size_t>(e.n_signals));
    for (const auto& v : sig->samples) EXPECT_EQ(v.size(), static_cast<size_t>(e.n_samples));
    if (e.record == "v102s") {
      // Real gaps: WFDB's invalid-sample value -2048 (format 212) in all four signals.
      ASSERT_EQ(sig->warnings.size(), 4u);
      EXPECT_EQ(sig->warnings[0],
                "signal 0 (II): 3 samples hold the WFDB invalid-sample value -2048 (first at "
                "sample 5591)");
    } else {
      EXPECT_TRUE(sig->warnings.empty()) << sig->warnings.front();
    }
  }
}

TEST(Wfdb, HeaderDetails) {
  auto v = read_header(test::data_path("ecg/v102s.hea"));  // CRLF, NU units, ADC resolution 0
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->signals[2].description, "PLETH");
  EXPECT_EQ(v->signals[2].units, "NU");
  EXPECT_EQ(v->signals[0].adc_resolution, 0);
  EXPECT_EQ(v->comments, (std::vector<std::string>{"Ventricular_Tachycardia", "False alarm"}));
  auto e = read_header(test::data_path("ecg/E07500.hea"));  // record name with extension, odd date
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->record_name, "E07500.mat");
  EXPECT_EQ(e->base_time, "05-May-2020");
  EXPECT_EQ(e->base_date, "09:49:17");
  EXPECT_EQ(e->comments[2], "Dx: 67741000119109,426177001");
  auto lr = read_header(test::data_path("ecg/00001_lr.hea"));  // unsigned checksums
  ASSERT_TRUE(lr.ok());
  EXPECT_EQ(lr->signals[2].checksum.value(), 64758);
  auto p = read_header(test::data_path("ecg/s0010_re.hea"));  // blank lines between comments
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->signals[12].file_name, "s0010_re.xyz");
  EXPECT_EQ(p->comments.front(), "age: 81");
  auto mit = read_header(test::data_path("ecg/208.hea"));  // baseline from ADC zero
  ASSERT_TRUE(mit.ok());
  EXPECT_EQ(mit->signals[0].adc_zero, 1024);
  EXPECT_EQ(mit->signals[0].adc_resolution, 11);
  EXPECT_EQ(mit->comments.size(), 5u);
}

TEST(Wfdb, ParsesFieldVariants) {
  auto h = parse_header(
      "# leading comment\r\n\r\nrec 4 257.3/1000(2) 10 10:00:00 01/01/2000\r\n"
      "a.dat 212x1:2+8 2.5e3(-7)/uV 12 5 -3 65535 0 Lead II long name\r\n"
      "a.dat 212 0\r\n"
      "b.dat 16 100/mV\n"
      "c.dat 80\n");
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_EQ(h->fs, 257.3);
  EXPECT_EQ(h->n_samples, 10);
  const SignalSpec& s = h->signals[0];
  EXPECT_EQ(s.format, 212);
  EXPECT_EQ(s.skew, 2);
  EXPECT_EQ(s.byte_offset, 8);
  EXPECT_DOUBLE_EQ(s.gain, 2500);
  EXPECT_TRUE(s.gain_given);
  EXPECT_DOUBLE_EQ(s.baseline, -7);
  EXPECT_EQ(s.units, "uV");
  EXPECT_EQ(s.adc_resolution, 12);
  EXPECT_EQ(s.adc_zero, 5);
  EXPECT_EQ(s.initial_value.value(), -3);
  EXPECT_EQ(s.checksum.value(), 65535);
  EXPECT_EQ(s.description, "Lead II long name");
  EXPECT_DOUBLE_EQ(h->signals[1].gain, 200);  // gain 0 means the WFDB default
  EXPECT_FALSE(h->signals[1].gain_given);
  EXPECT_EQ(h->signals[1].units, "mV");
  EXPECT_EQ(h->signals[2].units, "mV");
  EXPECT_DOUBLE_EQ(h->signals[3].gain, 200);
  EXPECT_EQ(h->comments, (std::vector<std::string>{"leading comment"}));
}

TEST(Wfdb, RejectsBadHeadersClearly) {
  auto multi = parse_header("rec/3 2 500 15000\nseg1 5000\n");
  ASSERT_FALSE(multi.ok());
  EXPECT_EQ(multi.status().code(), "unsupported_record");
  EXPECT_NE(multi.status().message().find("multi-segment"), std::string::npos);
  auto few = parse_header("rec 2 500 10\na.dat 16\n");
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.status().message().find("declares 2 signals but 1"), std::string::npos);
  auto gain = parse_header("rec 1 500 10\na.dat 16 abc/mV\n");
  ASSERT_FALSE(gain.ok());
  EXPECT_NE(gain.status().message().find("line 2: bad gain 'abc/mV'"), std::string::npos)
      << gain.status().message();
  EXPECT_FALSE(parse_header("rec 1 fast 10\na.dat 16\n").ok());
  EXPECT_FALSE(parse_header("# only comments\n").ok());
  EXPECT_FALSE(parse_header("rec 1 500\na.dat 16x\n").ok());
}

// Independent encoders, written from the WFDB signal(5) format descriptions.
std::string encode(int format, const std::vector<int32_t>& v, size_t nsig = 1) {
  std::string out;
  auto put = [&](uint32_t b) { out.push_back(static_cast<char>(b & 0xFF)); };
  for (size_t i = 0; i < v.size(); ++i) {
    const uint32_t u = static_cast<uint32_t>(v[i]);
    switch (format) {
      case 80:
        put(u + 128);
        break;
      case 16:
        put(u);
        put(u >> 8);
        break;
      case 61:
        put(u >> 8);
        put(u);
        break;
      case 160:
        put(u + 32768);
        put((u + 32768) >> 8);
        break;
      case 24:
        put(u);
        put(u >> 8);
        put(u >> 16);
        break;
      case 32:
        put(u);
        put(u >> 8);
        put(u >> 16);
        put(u >> 24);
        break;
      default:
        break;
    }
  }
  if (format == 212) {
    for (size_t i = 0; i < v.size(); i += 2) {
      const uint32_t a = static_cast<uint32_t>(v[i]) & 0xFFF;
      const uint32_t b = i + 1 < v.size() ? static_cast<uint32_t>(v[i + 1]) & 0xFFF : 0;
      put(a);
      put(((a >> 8) & 0x0F) | ((b >> 4) & 0xF0));
      put(b);
    }
  }
  if (format == 310 || format == 311) {
    for (size_t i = 0; i < v.size(); i += 3) {
      uint32_t s[3] = {0, 0, 0};
      for (size_t k = 0; k < 3 && i + k < v.size(); ++k)
        s[k] = static_cast<uint32_t>(v[i + k]) & 0x3FF;
      if (format == 311) {
        const uint32_t w = s[0] | (s[1] << 10) | (s[2] << 20);
        put(w);
        put(w >> 8);
        put(w >> 16);
        put(w >> 24);
      } else {
        const uint32_t w0 = (s[0] << 1) | ((s[2] & 0x1F) << 11);
        const uint32_t w1 = (s[1] << 1) | ((s[2] >> 5) << 11);
        put(w0);
        put(w0 >> 8);
        put(w1);
        put(w1 >> 8);
      }
    }
  }
  if (format == 8) {  // per-signal differences, starting from the initial value (sample 0)
    for (size_t i = 0; i < v.size(); ++i) {
      const int32_t prev = i < nsig ? v[i] : v[i - nsig];
      put(static_cast<uint32_t>(v[i] - prev));
    }
  }
  return out;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

int64_t checksum(const std::vector<int32_t>& v) {
  int64_t s = 0;
  for (int32_t x : v) s += x;
  return ((s % 65536) + 65536) % 65536;
}

TEST(Wfdb, EveryFormatRoundTrips) {
  struct Case {
    int format;
    int32_t lo, hi;
  };
  const std::vector<Case> cases = {{8, -100, 100},          {16, -32768, 32767},
                                   {61, -32768, 32767},     {80, -128, 127},
                                   {160, -32768, 32767},    {212, -2048, 2047},
                                   {310, -512, 511},        {311, -512, 511},
                                   {24, -8388608, 8388607}, {32, INT32_MIN / 2, INT32_MAX / 2}};
  test::TempDir dir;
  for (const Case& c : cases) {
    for (int64_t n : {7, 8, 9}) {  // odd lengths exercise partial 212/310/311 groups
      SCOPED_TRACE("format " + std::to_string(c.format) + " n " + std::to_string(n));
      // Two interleaved signals: a ramp through the whole range and its negation (format 8 stays
      // small because it stores differences).
      std::vector<int32_t> a, b, flat;
      for (int64_t t = 0; t < n; ++t) {
        const int64_t span = static_cast<int64_t>(c.hi) - c.lo;
        int32_t x = static_cast<int32_t>(c.lo + span * t / (n - 1));
        if (c.format == 8) x = static_cast<int32_t>(t * 9 - 30);
        a.push_back(x);
        b.push_back(std::clamp(-x, c.lo, c.hi));
        flat.push_back(a.back());
        flat.push_back(b.back());
      }
      write_file(dir.file("f.dat"), std::string(5, 'X') + encode(c.format, flat, 2));
      const std::string fmt = std::to_string(c.format) + "+5";
      const std::string text = "f 2 500 " + std::to_string(n) + "\nf.dat " + fmt + " 200 0 0 " +
                               std::to_string(a[0]) + " " + std::to_string(checksum(a)) +
                               " 0 I\nf.dat " + fmt + " 200 0 0 " + std::to_string(b[0]) + " " +
                               std::to_string(checksum(b)) + " 0 II\n";
      auto h = parse_header(text);
      ASSERT_TRUE(h.ok()) << h.status().to_string();
      auto sig = read_signals(h.value(), dir.path());
      ASSERT_TRUE(sig.ok()) << sig.status().to_string();
      EXPECT_EQ(sig->samples[0], a);
      EXPECT_EQ(sig->samples[1], b);
    }
  }
}

TEST(Wfdb, PerLeadFilesMixedFormatsAndLengthFromFileSize) {
  test::TempDir dir;
  const std::vector<int32_t> a = {1, -2, 3, -4, 5}, b = {100, 200, -300, 400, -500};
  write_file(dir.file("r_a.dat"), encode(16, a));
  write_file(dir.file("r_b.dat"), encode(212, b));
  auto h =
      parse_header("r 2 250\nr_a.dat 16 200 16 0 1 " + std::to_string(checksum(a)) +
                   " 0 I\nr_b.dat 212 200 12 0 100 " + std::to_string(checksum(b)) + " 0 II\n");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->n_samples, -1);
  auto sig = read_signals(h.value(), dir.path());
  ASSERT_TRUE(sig.ok()) << sig.status().to_string();
  EXPECT_EQ(sig->n_samples, 5);
  EXPECT_EQ(sig->samples[0], a);
  // A 212 file of 5 samples is 8 bytes; the last half-group's second sample is padding.
  EXPECT_EQ(std::vector<int32_t>(sig->samples[1].begin(), sig->samples[1].begin() + 5), b);
}

TEST(Wfdb, ChecksumPolicies) {
  test::TempDir dir;
  const std::vector<int32_t> a = {10, 20, 30};
  write_file(dir.file("c.dat"), encode(16, a));
  auto h = parse_header("c 1 500 3\nc.dat 16 200 16 0 10 61 0 I\n");  // real sum is 60
  ASSERT_TRUE(h.ok());
  auto err = read_signals(h.value(), dir.path());
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.status().code(), "bad_record");
  EXPECT_NE(err.status().message().find("checksum 60 (mod 65536) but the header says 61"),
            std::string::npos)
      << err.status().message();
  auto warn = read_signals(h.value(), dir.path(), ChecksumPolicy::kWarn);
  ASSERT_TRUE(warn.ok());
  ASSERT_EQ(warn->warnings.size(), 1u);
  EXPECT_TRUE(read_signals(h.value(), dir.path(), ChecksumPolicy::kIgnore).ok());
  // Signed and unsigned spellings of the same 16-bit sum both verify.
  write_file(dir.file("n.dat"), encode(16, {-5, -6}));
  EXPECT_TRUE(
      read_signals(parse_header("n 1 500 2\nn.dat 16 200 16 0 -5 -11 0 I\n").value(), dir.path())
          .ok());
  EXPECT_TRUE(
      read_signals(parse_header("n 1 500 2\nn.dat 16 200 16 0 -5 65525 0 I\n").value(), dir.path())
          .ok());
  auto init =
      read_signals(parse_header("n 1 500 2\nn.dat 16 200 16 0 7 65525 0 I\n").value(), dir.path());
  ASSERT_FALSE(init.ok());
  EXPECT_NE(init.status().message().find("initial value -5"), std::string::npos);
}

TEST(Wfdb, ShortOrMissingFilesAndUnsupportedFormats) {
  test::TempDir dir;
  write_file(dir.file("s.dat"), encode(16, {1, 2, 3}));
  auto shortfile = read_signals(parse_header("s 1 500 10\ns.dat 16\n").value(), dir.path());
  ASSERT_FALSE(shortfile.ok());
  EXPECT_NE(shortfile.status().message().find("holds 3 samples per signal; the header says 10"),
            std::string::npos)
      << shortfile.status().message();
  auto missing = read_signals(parse_header("s 1 500 3\nnope.dat 16\n").value(), dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), "not_found");
  auto flac = read_signals(parse_header("s 1 500 3\ns.dat 516\n").value(), dir.path());
  ASSERT_FALSE(flac.ok());
  EXPECT_EQ(flac.status().code(), "unsupported_record");
  auto spf = read_signals(parse_header("s 1 500 3\ns.dat 16x2\n").value(), dir.path());
  ASSERT_FALSE(spf.ok());
  EXPECT_NE(spf.status().message().find("samples per frame"), std::string::npos);
}

}  // namespace
}  // namespace ecgq::wfdb

namespace ecgq::wfdb {
namespace {

// Damaged inputs give errors, never crashes: every prefix of a real header, and a signal file cut
// at every length up to the header's need.
TEST(Wfdb, DamagedInputsFailCleanly) {
  std::ifstream in(test::data_path("ecg/s0010_re.hea"), std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t n = 0; n <= text.size(); ++n) (void)parse_header(text.substr(0, n));
  test::TempDir dir;
  const std::vector<int32_t> v = {1, -1, 2, -2, 3, -3, 4};
  // Bytes 7 samples need (a trailing partial group needs only the bytes of its own samples).
  const std::vector<std::pair<int, size_t>> needs = {{212, 11}, {310, 10}, {311, 10}, {24, 21}};
  for (const auto& [format, need] : needs) {
    const std::string bytes = encode(format, v);
    for (size_t cut = 0; cut <= bytes.size(); ++cut) {
      write_file(dir.file("t.dat"), bytes.substr(0, cut));
      auto h = parse_header("t 1 500 7\nt.dat " + std::to_string(format) + "\n");
      ASSERT_TRUE(h.ok());
      auto sig = read_signals(h.value(), dir.path());
      EXPECT_EQ(sig.ok(), cut >= need) << "format " << format << " cut " << cut;
      if (sig.ok()) {
        EXPECT_EQ(sig->samples[0], v);
      }
    }
  }
}

}  // namespace
}  // namespace ecgq::wfdb
