// Tests of include/edgelm/core: result<T>, checked arithmetic, the bounded reader, fp16/bf16, buffers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <edgelm/edgelm.hpp>
#include <limits>
#include <vector>

#if defined(__F16C__)
#include <immintrin.h>
#endif

using namespace edgelm;

TEST_CASE("result carries a value or an error with context") {
  result<int> ok = 42;
  REQUIRE(ok);
  CHECK(*ok == 42);
  result<int> bad = make_error(errc::truncated, "header cut off", 12, "blk.0.attn_q.weight");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == errc::truncated);
  CHECK(bad.error().message() == "truncated: header cut off ('blk.0.attn_q.weight', byte 12)");
  result<void> v;
  CHECK(v);
  result<void> vbad = make_error(errc::io_error, "x");
  CHECK_FALSE(vbad);
  CHECK(to_string(errc::duplicate_name) == "duplicate_name");
}

TEST_CASE("checked arithmetic detects overflow") {
  std::uint64_t out = 0;
  CHECK(detail::mul_ok(1u << 20, 1u << 20, out));
  CHECK(out == (std::uint64_t{1} << 40));
  CHECK_FALSE(detail::mul_ok(std::numeric_limits<std::uint64_t>::max(), 2, out));
  CHECK_FALSE(detail::add_ok(std::numeric_limits<std::uint64_t>::max(), 1, out));
  CHECK(detail::is_pow2(32));
  CHECK_FALSE(detail::is_pow2(0));
  CHECK_FALSE(detail::is_pow2(48));
  CHECK(detail::align_up(33, 32) == 64);
}

TEST_CASE("bounded reader never reads past the end") {
  const unsigned char raw[] = {1, 0, 0, 0, 2, 0};
  detail::byte_reader r(std::as_bytes(std::span(raw)));
  std::uint32_t a = 0;
  REQUIRE(r.read(a));
  CHECK(a == 1);
  std::uint32_t b = 0;
  CHECK_FALSE(r.read(b));  // only 2 bytes left
  CHECK(r.pos() == 4);
  std::string_view sv;
  CHECK_FALSE(r.view(3, sv));
  CHECK(r.view(2, sv));
  CHECK(r.left() == 0);
  CHECK_FALSE(r.skip(1));
}

TEST_CASE("UTF-8 validation rejects overlongs, surrogates and truncation") {
  CHECK(detail::valid_utf8("hello"));
  CHECK(detail::valid_utf8("na\xC3\xAFve \xF0\x9F\xA6\x99"));
  CHECK_FALSE(detail::valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(detail::valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(detail::valid_utf8("\xF0\x9F\xA6"));      // cut off
  CHECK_FALSE(detail::valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  CHECK_FALSE(detail::valid_utf8("\xFF"));
}

TEST_CASE("fp16 conversion: IEEE 754 binary16 reference values") {
  // Values from the IEEE 754 binary16 definition.
  CHECK(fp16_to_f32(0x3C00) == 1.0f);
  CHECK(fp16_to_f32(0xC000) == -2.0f);
  CHECK(fp16_to_f32(0x7BFF) == 65504.0f);
  CHECK(fp16_to_f32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(fp16_to_f32(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
  CHECK(std::isinf(fp16_to_f32(0x7C00)));
  CHECK(std::isnan(fp16_to_f32(0x7E00)));
  CHECK(f32_to_fp16(1.0f) == 0x3C00);
  CHECK(f32_to_fp16(65504.0f) == 0x7BFF);
  CHECK(f32_to_fp16(65520.0f) == 0x7C00);                   // rounds to inf
  CHECK(f32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);      // tie to even -> 0
  CHECK(f32_to_fp16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(f32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie to even
  CHECK(f32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);
  for (std::uint32_t h = 0; h < 0x10000; ++h) {  // every finite half round-trips
    if ((h & 0x7C00) == 0x7C00) continue;
    REQUIRE(f32_to_fp16(fp16_to_f32(static_cast<std::uint16_t>(h))) == h);
  }
}

#if defined(__F16C__)
TEST_CASE("fp16 conversion agrees with the F16C hardware instructions") {
  // An independent implementation: the CPU's own conversion (round to nearest even).
  std::uint32_t state = 12345;
  for (int i = 0; i < 200000; ++i) {
    state = state * 1664525u + 1013904223u;
    float f;
    std::uint32_t bits = state;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f)) continue;
    const auto hw = static_cast<std::uint16_t>(_cvtss_sh(f, 0));
    REQUIRE(f32_to_fp16(f) == hw);
  }
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;
    REQUIRE(fp16_to_f32(static_cast<std::uint16_t>(h)) == _cvtsh_ss(static_cast<unsigned short>(h)));
  }
}
#endif

TEST_CASE("bf16 conversion") {
  CHECK(bf16_to_f32(0x3F80) == 1.0f);
  CHECK(f32_to_bf16(1.0f) == 0x3F80);
  CHECK(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);   // tie to even
  CHECK(f32_to_bf16(1.0f + std::ldexp(3.0f, -8)) == 0x3F82);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("aligned_buffer is aligned, zeroed and reports allocation failure") {
  auto b = aligned_buffer<float>::make(1000);
  REQUIRE(b);
  CHECK(reinterpret_cast<std::uintptr_t>(b->data()) % 64 == 0);
  for (std::size_t i = 0; i < b->size(); ++i) REQUIRE((*b)[i] == 0.0f);
  auto huge = aligned_buffer<float>::make(std::numeric_limits<std::size_t>::max() / 2);
  REQUIRE_FALSE(huge);
  CHECK(huge.error().code == errc::out_of_memory);
}

TEST_CASE("memory_storage and file_storage expose the same bytes") {
  std::vector<std::byte> v(10, std::byte{7});
  memory_storage m(std::move(v));
  CHECK(m.bytes().size() == 10);
  auto missing = file_storage::open("/nonexistent/edgelm/file");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == errc::io_error);
}
