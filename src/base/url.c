/* The WHATWG URL Standard's basic URL parser (no base URL) and URL serializer, matching
 * what iroh's RelayUrl produces: iroh wraps Rust's `url` crate (2.5.8), whose IDNA step is
 * the `idna` crate (1.1, UTS #46 non-transitional with CheckHyphens=false,
 * CheckBidi=true, CheckJoiners=true, UseSTD3ASCIIRules=false, VerifyDnsLength=false and
 * the WHATWG forbidden domain code points as deny list).
 *
 * Where the `url` crate differs from the current standard, this file follows the crate,
 * since a ticket that iroh reads back must give the same text:
 *  - the path percent-encode set does not contain '^';
 *  - an opaque path keeps a space before '?' or '#' (no "%20");
 *  - a non-special URL whose userinfo serializes to nothing may have an empty host
 *    ("foo://@" and "foo://:@/x" parse; "foo://@/x" does not);
 *  - a port may end with '\' in a non-special URL too ("foo://h:1\x" -> "foo://h:1/\x");
 *  - "..": a last segment that is a Windows drive letter ("C:" or "C|") is never removed,
 *    in any scheme ("http://h/a/C:/.." -> "http://h/a/C:/");
 *  - file URLs: leading empty path segments are dropped ("file:////x" -> "file:///x"),
 *    a drive letter as first segment clears the host ("file://h/C|/x" -> "file:///C:/x"),
 *    but after "file:///" the drive letter is not the first segment and stays as written
 *    ("file:///C|/x" -> "file:///C|/x").
 *  - a tab or newline right after a first segment "C:" of a file path ends the segment
 *    ("file:C:<TAB>x" -> "file:///C:/x").
 * The `url` crate's parser is not idempotent on some file URLs ("file://h//C|" parses to
 * "file://h/C|", which parses to "file:///C:"). iroh parses a relay URL when it is made and
 * again when a ticket holding it is decoded, so what any iroh peer ends up with is the
 * second parse: ir_url_normalize() parses twice and returns that, which is idempotent.
 *
 * IDNA. libidn2 implements IDNA2008 plus the UTS #46 mapping of an older Unicode version,
 * so it is used per label and corrected where it differs from UTS #46 as the idna crate
 * applies it (Unicode 17):
 *  - pure ASCII labels never reach libidn2: they are lowercased (libidn2 would apply
 *    CheckHyphens and reject "-a-" or "ab--cd"); "xn--" labels are punycode-decoded here
 *    and accepted when the decoded label is not all ASCII, does not itself start with
 *    "xn--" and converts back to exactly the same A-label;
 *  - labels are split at '.', U+3002, U+FF0E and U+FF61 (the only code points UTS #46
 *    maps to a full stop); code points UTS #46 ignores are removed and fullwidth ASCII is
 *    mapped to ASCII first (a label that becomes ASCII, e.g. "xn--" in fullwidth letters,
 *    then takes the ASCII path); so are the code points that UTS #46 17.0 maps differently
 *    from libidn2 or to code points libidn2 rejects (idna_map1[], idna_mapn[]: U+1E9E ẞ to
 *    U+00DF where libidn2 gives "ss", U+00BC '¼' to "1⁄4", Hangul compatibility jamo,
 *    Georgian capitals, ...);
 *  - libidn2 runs with IDN2_NONTRANSITIONAL | IDN2_NO_ALABEL_ROUNDTRIP (the round trip
 *    rejects labels with ASCII symbols such as "é*x" that UTS #46 accepts); when it
 *    rejects a label only for IDNA2008 reasons (a code point disallowed or unassigned
 *    there, hyphen placement, a label longer than 63 bytes), the label is converted in
 *    pieces: ASCII symbols and the code points of idna_pass[] (valid and unmapped in UTS
 *    #46 17.0 but not accepted by libidn2: emoji and other symbols, scripts newer than
 *    libidn2's tables) are kept as they are, the runs between them go through libidn2
 *    (a run too long for it in chunks, cut where the code points on both sides map alone
 *    and together the same way), Hangul jamo are composed (the one NFC composition that
 *    can happen across pieces) and the result is punycode-encoded here;
 *  - bidi: libidn2 checks the RFC 5893 rules inside a label that has right-to-left
 *    characters; the rules between labels (in a domain with a right-to-left label, every
 *    other label must start with a letter and end with a letter or digit: "1.אב" fails,
 *    as in Rust) and across pieces are checked here with approximate tables (bidi_rtl[]
 *    from Unicode 14, is_ltr_letter(), is_nsm()).
 * Remaining differences, all on unusual names: in the piecewise path the contextual rules
 * (bidi, joiners) are checked per piece, and where the approximate bidi tables are unsure
 * a label is rejected, so a few names that mix right-to-left text with symbols, long runs
 * of digits or rare scripts, and labels with combining marks newer than libidn2's tables,
 * fail here and parse in Rust. Every A-label written is checked to read back to
 * itself, so the result is always stable. */
#include "base/url.h"

#include <idn2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Code points that UTS #46 (IdnaMappingTable 17.0) marks valid and that libidn2 2.3
 * rejects in every context; of the combining marks only those that cannot compose or be
 * reordered are here (a label with another one is rejected, as libidn2 alone would).
 * Derived by running every valid code point through idn2_to_ascii_8z and comparing with
 * UTS #46. Sorted pairs of first, last. */
static const uint32_t idna_pass[][2] = {
    {0xA1, 0xA7}, {0xA9, 0xA9}, {0xAB, 0xAC}, {0xAE, 0xAE}, {0xB0, 0xB1}, {0xB6, 0xB6},
    {0xBB, 0xBB}, {0xBF, 0xBF}, {0xD7, 0xD7}, {0xF7, 0xF7}, {0x2C2, 0x2C5}, {0x2D2, 0x2D7},
    {0x2DE, 0x2DF}, {0x2E5, 0x2EB}, {0x2ED, 0x2ED}, {0x2EF, 0x2FF}, {0x3F6, 0x3F6},
    {0x482, 0x482}, {0x488, 0x489}, {0x55A, 0x55F}, {0x589, 0x58A}, {0x58D, 0x58F},
    {0x5BE, 0x5BE}, {0x5C0, 0x5C0}, {0x5C3, 0x5C3}, {0x5C6, 0x5C6}, {0x606, 0x60F},
    {0x61B, 0x61B}, {0x61D, 0x61F}, {0x640, 0x640}, {0x66A, 0x66D}, {0x6D4, 0x6D4},
    {0x6DE, 0x6DE}, {0x6E9, 0x6E9}, {0x700, 0x70D}, {0x7F6, 0x7FA}, {0x7FE, 0x7FF},
    {0x830, 0x83E}, {0x85E, 0x85E}, {0x870, 0x88F}, {0x8B5, 0x8B5}, {0x8BE, 0x8C9},
    {0x964, 0x965}, {0x970, 0x970}, {0x9F2, 0x9FB}, {0x9FD, 0x9FD}, {0xA76, 0xA76},
    {0xAF0, 0xAF1}, {0xB55, 0xB55}, {0xB70, 0xB70}, {0xB72, 0xB77}, {0xBF0, 0xBFA},
    {0xC5C, 0xC5D}, {0xC77, 0xC7F}, {0xC84, 0xC84}, {0xCDC, 0xCDD}, {0xD04, 0xD04},
    {0xD4F, 0xD4F}, {0xD58, 0xD5E}, {0xD70, 0xD79}, {0xD81, 0xD81}, {0xDF4, 0xDF4},
    {0xE3F, 0xE3F}, {0xE4F, 0xE4F}, {0xE5A, 0xE5B}, {0xF01, 0xF0A}, {0xF0D, 0xF17},
    {0xF1A, 0xF1F}, {0xF2A, 0xF34}, {0xF36, 0xF36}, {0xF38, 0xF38}, {0xF3A, 0xF3D},
    {0xF85, 0xF85}, {0xFBE, 0xFC5}, {0xFC7, 0xFCC}, {0xFCE, 0xFDA}, {0x104A, 0x104F},
    {0x109E, 0x109F}, {0x10FB, 0x10FB}, {0x1100, 0x115E}, {0x1161, 0x11FF}, {0x1360, 0x137C},
    {0x1390, 0x1399}, {0x1400, 0x1400}, {0x166D, 0x166E}, {0x169B, 0x169C}, {0x16EB, 0x16F0},
    {0x170D, 0x170D}, {0x171F, 0x171F}, {0x1735, 0x1736}, {0x17D4, 0x17D6}, {0x17D8, 0x17DB},
    {0x17F0, 0x17F9}, {0x1800, 0x180A}, {0x1940, 0x1940}, {0x1944, 0x1945}, {0x19DA, 0x19DA},
    {0x19DE, 0x19FF}, {0x1A1E, 0x1A1F}, {0x1AA0, 0x1AA6}, {0x1AA8, 0x1AAD}, {0x1ABE, 0x1ABE},
    {0x1B4C, 0x1B4C}, {0x1B4E, 0x1B4F}, {0x1B5A, 0x1B6A}, {0x1B74, 0x1B7F}, {0x1BFC, 0x1BFF},
    {0x1C3B, 0x1C3F}, {0x1C7E, 0x1C7F}, {0x1C8A, 0x1C8A}, {0x1CC0, 0x1CC7}, {0x1CD3, 0x1CD3},
    {0x2010, 0x2010}, {0x2012, 0x2016}, {0x2018, 0x2023}, {0x2027, 0x2027}, {0x2030, 0x2032},
    {0x2035, 0x2035}, {0x2038, 0x203B}, {0x203D, 0x203D}, {0x203F, 0x2046}, {0x204A, 0x2056},
    {0x2058, 0x205E}, {0x20A0, 0x20A7}, {0x20A9, 0x20C1}, {0x20DD, 0x20E0}, {0x20E2, 0x20E4},
    {0x2104, 0x2104}, {0x2108, 0x2108}, {0x2114, 0x2114}, {0x2117, 0x2118}, {0x211E, 0x211F},
    {0x2123, 0x2123}, {0x2125, 0x2125}, {0x2127, 0x2127}, {0x2129, 0x2129}, {0x212E, 0x212E},
    {0x213A, 0x213A}, {0x2141, 0x2144}, {0x214A, 0x214D}, {0x214F, 0x214F}, {0x2180, 0x2182},
    {0x2185, 0x2188}, {0x218A, 0x218B}, {0x2190, 0x222B}, {0x222E, 0x222E}, {0x2231, 0x225F},
    {0x2261, 0x226D}, {0x2270, 0x2328}, {0x232B, 0x2429}, {0x2440, 0x244A}, {0x24EB, 0x2A0B},
    {0x2A0D, 0x2A73}, {0x2A77, 0x2ADB}, {0x2ADD, 0x2B73}, {0x2B76, 0x2BFF}, {0x2C5F, 0x2C5F},
    {0x2CE5, 0x2CEA}, {0x2CF9, 0x2CFF}, {0x2D70, 0x2D70}, {0x2E00, 0x2E2E}, {0x2E30, 0x2E5D},
    {0x2E80, 0x2E99}, {0x2E9B, 0x2E9E}, {0x2EA0, 0x2EF2}, {0x3001, 0x3001}, {0x3003, 0x3004},
    {0x3008, 0x3029}, {0x3030, 0x3035}, {0x3037, 0x3037}, {0x303B, 0x303B}, {0x303D, 0x303F},
    {0x30A0, 0x30A0}, {0x3190, 0x3191}, {0x31BB, 0x31E5}, {0x3248, 0x324F}, {0x327F, 0x327F},
    {0x4DB6, 0x4DFF}, {0x9FF0, 0x9FFF}, {0xA490, 0xA4C6}, {0xA4FE, 0xA4FF}, {0xA60D, 0xA60F},
    {0xA670, 0xA673}, {0xA67E, 0xA67E}, {0xA6E6, 0xA6EF}, {0xA6F2, 0xA6F7}, {0xA700, 0xA716},
    {0xA720, 0xA721}, {0xA789, 0xA78A}, {0xA7C1, 0xA7C1}, {0xA7C8, 0xA7C8}, {0xA7CA, 0xA7CA},
    {0xA7CD, 0xA7CD}, {0xA7CF, 0xA7CF}, {0xA7D1, 0xA7D1}, {0xA7D3, 0xA7D3}, {0xA7D5, 0xA7D5},
    {0xA7D7, 0xA7D7}, {0xA7D9, 0xA7D9}, {0xA7DB, 0xA7DB}, {0xA7F6, 0xA7F6}, {0xA828, 0xA82B},
    {0xA830, 0xA839}, {0xA874, 0xA877}, {0xA8CE, 0xA8CF}, {0xA8F8, 0xA8FA}, {0xA8FC, 0xA8FC},
    {0xA92E, 0xA92F}, {0xA95F, 0xA97C}, {0xA9C1, 0xA9CD}, {0xA9DE, 0xA9DF}, {0xAA5C, 0xAA5F},
    {0xAA77, 0xAA79}, {0xAADE, 0xAADF}, {0xAAF0, 0xAAF1}, {0xAB5B, 0xAB5B}, {0xAB68, 0xAB68},
    {0xAB6A, 0xAB6B}, {0xABEB, 0xABEB}, {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xFBB2, 0xFBD2},
    {0xFD3E, 0xFD4F}, {0xFD90, 0xFD91}, {0xFDC8, 0xFDCF}, {0xFDFD, 0xFDFF}, {0xFE45, 0xFE46},
    {0x10100, 0x10102}, {0x10107, 0x10133}, {0x10137, 0x1018E}, {0x10190, 0x1019C},
    {0x101A0, 0x101A0}, {0x101D0, 0x101FC}, {0x102E1, 0x102FB}, {0x10320, 0x10323},
    {0x10341, 0x10341}, {0x1034A, 0x1034A}, {0x1039F, 0x1039F}, {0x103D0, 0x103D5},
    {0x1056F, 0x1056F}, {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9},
    {0x105BB, 0x105BC}, {0x105C0, 0x105F3}, {0x10780, 0x10780}, {0x10857, 0x1085F},
    {0x10877, 0x1087F}, {0x108A7, 0x108AF}, {0x108FB, 0x108FF}, {0x10916, 0x1091B},
    {0x1091F, 0x1091F}, {0x1093F, 0x10959}, {0x109BC, 0x109BD}, {0x109C0, 0x109CF},
    {0x109D2, 0x109FF}, {0x10A40, 0x10A48}, {0x10A50, 0x10A58}, {0x10A7D, 0x10A7F},
    {0x10A9D, 0x10A9F}, {0x10AC8, 0x10AC8}, {0x10AEB, 0x10AF6}, {0x10B39, 0x10B3F},
    {0x10B58, 0x10B5F}, {0x10B78, 0x10B7F}, {0x10B99, 0x10B9C}, {0x10BA9, 0x10BAF},
    {0x10CFA, 0x10CFF}, {0x10D40, 0x10D4F}, {0x10D6E, 0x10D85}, {0x10D8E, 0x10D8F},
    {0x10E60, 0x10E7E}, {0x10E80, 0x10EA9}, {0x10EAD, 0x10EAD}, {0x10EB0, 0x10EB1},
    {0x10EC2, 0x10EC7}, {0x10ED0, 0x10ED8}, {0x10F1D, 0x10F26}, {0x10F51, 0x10F59},
    {0x10F70, 0x10F81}, {0x10F86, 0x10F89}, {0x10FB0, 0x10FCB}, {0x11047, 0x1104D},
    {0x11052, 0x11065}, {0x11071, 0x11075}, {0x110BB, 0x110BC}, {0x110BE, 0x110C2},
    {0x11140, 0x11143}, {0x11147, 0x11147}, {0x11174, 0x11175}, {0x111C5, 0x111C8},
    {0x111CD, 0x111CF}, {0x111DB, 0x111DB}, {0x111DD, 0x111DF}, {0x111E1, 0x111F4},
    {0x11238, 0x1123D}, {0x1123F, 0x11240}, {0x112A9, 0x112A9}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7},
    {0x113D1, 0x113D1}, {0x113D3, 0x113D5}, {0x113D7, 0x113D8}, {0x1144B, 0x1144F},
    {0x1145A, 0x1145B}, {0x1145D, 0x1145D}, {0x11460, 0x11461}, {0x114C6, 0x114C6},
    {0x115C1, 0x115D7}, {0x11641, 0x11643}, {0x11660, 0x1166C}, {0x116B9, 0x116B9},
    {0x116D0, 0x116E3}, {0x1173A, 0x11746}, {0x1183B, 0x1183B}, {0x118EA, 0x118F2},
    {0x11900, 0x11906}, {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916},
    {0x11918, 0x1192F}, {0x11931, 0x11934}, {0x11937, 0x11938}, {0x1193B, 0x1193C},
    {0x1193F, 0x11942}, {0x11944, 0x11946}, {0x11950, 0x11959}, {0x119E2, 0x119E2},
    {0x11A3F, 0x11A46}, {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2}, {0x11AB0, 0x11ABF},
    {0x11B00, 0x11B09}, {0x11BC0, 0x11BE1}, {0x11BF0, 0x11BF9}, {0x11C41, 0x11C45},
    {0x11C5A, 0x11C6C}, {0x11C70, 0x11C71}, {0x11DB0, 0x11DDB}, {0x11DE0, 0x11DE9},
    {0x11EF7, 0x11EF8}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33},
    {0x11F43, 0x11F59}, {0x11FB0, 0x11FB0}, {0x11FC0, 0x11FF1}, {0x11FFF, 0x11FFF},
    {0x12400, 0x1246E}, {0x12470, 0x12474}, {0x12F90, 0x12FF2}, {0x1342F, 0x1342F},
    {0x13441, 0x13446}, {0x13460, 0x143FA}, {0x16100, 0x1611D}, {0x16130, 0x16139},
    {0x16A6E, 0x16ABE}, {0x16AC0, 0x16AC9}, {0x16AF5, 0x16AF5}, {0x16B37, 0x16B3F},
    {0x16B44, 0x16B45}, {0x16B5B, 0x16B61}, {0x16D40, 0x16D79}, {0x16E80, 0x16E9A},
    {0x16EBB, 0x16ED3}, {0x16FE2, 0x16FE2}, {0x16FE4, 0x16FE4}, {0x16FF2, 0x16FF6},
    {0x187F8, 0x187FF}, {0x18AF3, 0x18CD5}, {0x18CFF, 0x18D1E}, {0x18D80, 0x18DF2},
    {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE}, {0x1B11F, 0x1B122},
    {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1BC9C, 0x1BC9C}, {0x1BC9F, 0x1BC9F},
    {0x1CC00, 0x1CCD5}, {0x1CCFA, 0x1CCFC}, {0x1CD00, 0x1CEB3}, {0x1CEBA, 0x1CED0},
    {0x1CEE0, 0x1CEF0}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46}, {0x1CF50, 0x1CFC3},
    {0x1D000, 0x1D0F5}, {0x1D100, 0x1D126}, {0x1D129, 0x1D15D}, {0x1D16A, 0x1D16C},
    {0x1D183, 0x1D184}, {0x1D18C, 0x1D1A9}, {0x1D1AE, 0x1D1BA}, {0x1D1C1, 0x1D1EA},
    {0x1D200, 0x1D241}, {0x1D245, 0x1D245}, {0x1D2C0, 0x1D2D3}, {0x1D2E0, 0x1D2F3},
    {0x1D300, 0x1D356}, {0x1D360, 0x1D378}, {0x1D800, 0x1D9FF}, {0x1DA37, 0x1DA3A},
    {0x1DA6D, 0x1DA74}, {0x1DA76, 0x1DA83}, {0x1DA85, 0x1DA8B}, {0x1DF00, 0x1DF1E},
    {0x1DF25, 0x1DF2A}, {0x1E14F, 0x1E14F}, {0x1E290, 0x1E2AD}, {0x1E2FF, 0x1E2FF},
    {0x1E4D0, 0x1E4EB}, {0x1E4F0, 0x1E4F9}, {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5FA},
    {0x1E5FF, 0x1E5FF}, {0x1E6C0, 0x1E6DE}, {0x1E6E0, 0x1E6E2}, {0x1E6E4, 0x1E6E5},
    {0x1E6E7, 0x1E6ED}, {0x1E6F0, 0x1E6F4}, {0x1E6FE, 0x1E6FF}, {0x1E7E0, 0x1E7E6},
    {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E8C7, 0x1E8CF},
    {0x1E95E, 0x1E95F}, {0x1EC71, 0x1ECB4}, {0x1ED01, 0x1ED3D}, {0x1EEF0, 0x1EEF1},
    {0x1F000, 0x1F02B}, {0x1F030, 0x1F093}, {0x1F0A0, 0x1F0AE}, {0x1F0B1, 0x1F0BF},
    {0x1F0C1, 0x1F0CF}, {0x1F0D1, 0x1F0F5}, {0x1F10B, 0x1F10F}, {0x1F12F, 0x1F12F},
    {0x1F150, 0x1F169}, {0x1F16D, 0x1F18F}, {0x1F191, 0x1F1AD}, {0x1F1E6, 0x1F1FF},
    {0x1F260, 0x1F265}, {0x1F300, 0x1F6D8}, {0x1F6DC, 0x1F6EC}, {0x1F6F0, 0x1F6FC},
    {0x1F700, 0x1F7D9}, {0x1F7E0, 0x1F7EB}, {0x1F7F0, 0x1F7F0}, {0x1F800, 0x1F80B},
    {0x1F810, 0x1F847}, {0x1F850, 0x1F859}, {0x1F860, 0x1F887}, {0x1F890, 0x1F8AD},
    {0x1F8B0, 0x1F8BB}, {0x1F8C0, 0x1F8C1}, {0x1F8D0, 0x1F8D8}, {0x1F900, 0x1FA57},
    {0x1FA60, 0x1FA6D}, {0x1FA70, 0x1FA7C}, {0x1FA80, 0x1FA8A}, {0x1FA8E, 0x1FAC6},
    {0x1FAC8, 0x1FAC8}, {0x1FACD, 0x1FADC}, {0x1FADF, 0x1FAEA}, {0x1FAEF, 0x1FAF8},
    {0x1FB00, 0x1FB92}, {0x1FB94, 0x1FBEF}, {0x1FBFA, 0x1FBFA}, {0x2A6D7, 0x2A6DF},
    {0x2B735, 0x2B73F}, {0x2CEA2, 0x2CEAD}, {0x2EBF0, 0x2EE5D}, {0x30000, 0x3134A},
    {0x31350, 0x33479},
};

/* The combining marks of idna_pass[] (a label must not start with one). */
static const uint32_t idna_pass_mark[][2] = {
    {0x488, 0x489}, {0xB55, 0xB55}, {0xD81, 0xD81}, {0x1ABE, 0x1ABE}, {0x20DD, 0x20E0},
    {0x20E2, 0x20E4}, {0xA670, 0xA672}, {0x11073, 0x11074}, {0x110C2, 0x110C2},
    {0x111CE, 0x111CF}, {0x11931, 0x11934}, {0x11937, 0x11938}, {0x1193B, 0x1193C},
    {0x11940, 0x11940}, {0x11942, 0x11942}, {0x16FE4, 0x16FE4}, {0x1CF00, 0x1CF2D},
    {0x1CF30, 0x1CF46},
};

/* Code points that UTS #46 17.0 maps to one code point where libidn2 rejects them or maps
 * them differently (U+1E9E to "ss"): first, last, offset to add. */
static const int32_t idna_map1[][3] = {
    {0x4C0, 0x4C0, 15}, {0x10A0, 0x10C5, 7264}, {0x1C89, 0x1C89, 1}, {0x1E9E, 0x1E9E, -7615},
    {0x2011, 0x2011, -1}, {0x207B, 0x207B, 407}, {0x208B, 0x208B, 391}, {0x2132, 0x2132, 28},
    {0x2140, 0x2140, 209}, {0x2183, 0x2183, 1}, {0x2329, 0x232A, 3295}, {0x2C2F, 0x2C2F, 48},
    {0x3036, 0x3036, -36}, {0x3131, 0x3132, -8241}, {0x3133, 0x3133, -8073},
    {0x3134, 0x3134, -8242}, {0x3135, 0x3136, -8073}, {0x3137, 0x3139, -8244},
    {0x313A, 0x313F, -8074}, {0x3140, 0x3140, -8230}, {0x3141, 0x3143, -8251},
    {0x3144, 0x3144, -8227}, {0x3145, 0x314E, -8252}, {0x314F, 0x3163, -8174},
    {0x3165, 0x3166, -8273}, {0x3167, 0x3168, -8096}, {0x3169, 0x3169, -8093},
    {0x316A, 0x316A, -8092}, {0x316B, 0x316B, -8088}, {0x316C, 0x316C, -8085},
    {0x316D, 0x316D, -8084}, {0x316E, 0x316E, -8274}, {0x316F, 0x316F, -8082},
    {0x3170, 0x3170, -8081}, {0x3171, 0x3172, -8276}, {0x3173, 0x3173, -8275},
    {0x3174, 0x3175, -8274}, {0x3176, 0x3176, -8271}, {0x3177, 0x3177, -8270},
    {0x3178, 0x317C, -8269}, {0x317D, 0x317D, -8267}, {0x317E, 0x317E, -8264},
    {0x317F, 0x317F, -8255}, {0x3180, 0x3180, -8249}, {0x3181, 0x3181, -8245},
    {0x3182, 0x3183, -8081}, {0x3184, 0x3186, -8237}, {0x3187, 0x3188, -8195},
    {0x3189, 0x3189, -8193}, {0x318A, 0x318B, -8185}, {0x318C, 0x318C, -8184},
    {0x318D, 0x318D, -8175}, {0x318E, 0x318E, -8173}, {0x3260, 0x3260, -8544},
    {0x3261, 0x3262, -8543}, {0x3263, 0x3265, -8542}, {0x3266, 0x3266, -8541},
    {0x3267, 0x3268, -8540}, {0x3269, 0x326D, -8539}, {0xA7C0, 0xA7C0, 1}, {0xA7C7, 0xA7C7, 1},
    {0xA7C9, 0xA7C9, 1}, {0xA7CB, 0xA7CB, -42343}, {0xA7CC, 0xA7CC, 1}, {0xA7CE, 0xA7CE, 1},
    {0xA7D0, 0xA7D0, 1}, {0xA7D2, 0xA7D2, 1}, {0xA7D4, 0xA7D4, 1}, {0xA7D6, 0xA7D6, 1},
    {0xA7D8, 0xA7D8, 1}, {0xA7DA, 0xA7DA, 1}, {0xA7DC, 0xA7DC, -42561},
    {0xA7F1, 0xA7F1, -42878}, {0xA7F5, 0xA7F5, 1}, {0xFE11, 0xFE11, -52752},
    {0xFE17, 0xFE18, -52737}, {0xFE31, 0xFE31, -56861}, {0xFE32, 0xFE32, -56863},
    {0xFE39, 0xFE3A, -52773}, {0xFE3B, 0xFE3C, -52779}, {0xFE3D, 0xFE3E, -52787},
    {0xFE3F, 0xFE40, -52791}, {0xFE41, 0xFE44, -52789}, {0xFE51, 0xFE51, -52816},
    {0xFE58, 0xFE58, -56900}, {0xFE5D, 0xFE5E, -52809}, {0xFF5F, 0xFF60, -54746},
    {0xFF62, 0xFF63, -53078}, {0xFF64, 0xFF64, -53091}, {0xFFA1, 0xFFA2, -61089},
    {0xFFA3, 0xFFA3, -60921}, {0xFFA4, 0xFFA4, -61090}, {0xFFA5, 0xFFA6, -60921},
    {0xFFA7, 0xFFA9, -61092}, {0xFFAA, 0xFFAF, -60922}, {0xFFB0, 0xFFB0, -61078},
    {0xFFB1, 0xFFB3, -61099}, {0xFFB4, 0xFFB4, -61075}, {0xFFB5, 0xFFBE, -61100},
    {0xFFC2, 0xFFC7, -61025}, {0xFFCA, 0xFFCF, -61027}, {0xFFD2, 0xFFD7, -61029},
    {0xFFDA, 0xFFDC, -61031}, {0xFFE0, 0xFFE1, -65342}, {0xFFE2, 0xFFE2, -65334},
    {0xFFE4, 0xFFE4, -65342}, {0xFFE5, 0xFFE5, -65344}, {0xFFE6, 0xFFE6, -57149},
    {0xFFE8, 0xFFE8, -56038}, {0xFFE9, 0xFFEC, -56921}, {0xFFED, 0xFFED, -55885},
    {0xFFEE, 0xFFEE, -55843}, {0x10570, 0x1057A, 39}, {0x1057C, 0x1058A, 39},
    {0x1058C, 0x10592, 39}, {0x10594, 0x10595, 39}, {0x1079C, 0x1079C, 55144},
    {0x1079F, 0x1079F, 55142}, {0x107A1, 0x107A1, 55141}, {0x107A7, 0x107A7, 55137},
    {0x107B9, 0x107B9, 55121}, {0x107BA, 0x107BA, 55140}, {0x10D50, 0x10D65, 32},
    {0x16EA0, 0x16EB8, 27}, {0x1CCD6, 0x1CCEF, -117877}, {0x1CCF0, 0x1CCF9, -117952},
    {0x1D6C1, 0x1D6C1, -111802}, {0x1D6DB, 0x1D6DB, -111833}, {0x1D6FB, 0x1D6FB, -111860},
    {0x1D715, 0x1D715, -111891}, {0x1D735, 0x1D735, -111918}, {0x1D74F, 0x1D74F, -111949},
    {0x1D76F, 0x1D76F, -111976}, {0x1D789, 0x1D789, -112007}, {0x1D7A9, 0x1D7A9, -112034},
    {0x1D7C3, 0x1D7C3, -112065}, {0x1E030, 0x1E038, -121856}, {0x1E039, 0x1E03B, -121855},
    {0x1E03C, 0x1E046, -121854}, {0x1E047, 0x1E047, -121852}, {0x1E048, 0x1E049, -121851},
    {0x1E04A, 0x1E04A, -80321}, {0x1E04B, 0x1E04B, -121714}, {0x1E04C, 0x1E04C, -121846},
    {0x1E04D, 0x1E04D, -121845}, {0x1E04E, 0x1E04E, -121701}, {0x1E04F, 0x1E04F, -121760},
    {0x1E050, 0x1E050, -121729}, {0x1E051, 0x1E059, -121889}, {0x1E05A, 0x1E05B, -121888},
    {0x1E05C, 0x1E05D, -121886}, {0x1E05E, 0x1E05E, -121885}, {0x1E05F, 0x1E064, -121884},
    {0x1E065, 0x1E066, -121883}, {0x1E067, 0x1E067, -121814}, {0x1E068, 0x1E068, -121874},
    {0x1E069, 0x1E069, -121876}, {0x1E06A, 0x1E06A, -121867}, {0x1E06B, 0x1E06B, -121792},
    {0x1E06C, 0x1E06C, -80411}, {0x1E06D, 0x1E06D, -121788}, {0x2F868, 0x2F868, -180588},
    {0x2F874, 0x2F874, -170273}, {0x2F91F, 0x2F91F, -46452}, {0x2F95F, 0x2F95F, -163441},
    {0x2F9BF, 0x2F9BF, -177128},
};

/* The same for mappings to several code points: code point, count, the code points. */
static const uint32_t idna_mapn[] = {
    0xBC, 3, 0x31, 0x2044, 0x34, 0xBD, 3, 0x31, 0x2044, 0x32, 0xBE, 3, 0x33, 0x2044, 0x34,
    0x2033, 2, 0x2032, 0x2032, 0x2034, 3, 0x2032, 0x2032, 0x2032, 0x2036, 2, 0x2035, 0x2035,
    0x2037, 3, 0x2035, 0x2035, 0x2035, 0x2057, 4, 0x2032, 0x2032, 0x2032, 0x2032, 0x2103, 2,
    0xB0, 0x63, 0x2109, 2, 0xB0, 0x66, 0x2150, 3, 0x31, 0x2044, 0x37, 0x2151, 3, 0x31,
    0x2044, 0x39, 0x2152, 4, 0x31, 0x2044, 0x31, 0x30, 0x2153, 3, 0x31, 0x2044, 0x33,
    0x2154, 3, 0x32, 0x2044, 0x33, 0x2155, 3, 0x31, 0x2044, 0x35, 0x2156, 3, 0x32, 0x2044,
    0x35, 0x2157, 3, 0x33, 0x2044, 0x35, 0x2158, 3, 0x34, 0x2044, 0x35, 0x2159, 3, 0x31,
    0x2044, 0x36, 0x215A, 3, 0x35, 0x2044, 0x36, 0x215B, 3, 0x31, 0x2044, 0x38, 0x215C, 3,
    0x33, 0x2044, 0x38, 0x215D, 3, 0x35, 0x2044, 0x38, 0x215E, 3, 0x37, 0x2044, 0x38,
    0x215F, 2, 0x31, 0x2044, 0x2189, 3, 0x30, 0x2044, 0x33, 0x222C, 2, 0x222B, 0x222B,
    0x222D, 3, 0x222B, 0x222B, 0x222B, 0x222F, 2, 0x222E, 0x222E, 0x2230, 3, 0x222E, 0x222E,
    0x222E, 0x2A0C, 4, 0x222B, 0x222B, 0x222B, 0x222B, 0x2ADC, 2, 0x2ADD, 0x338, 0x3200, 3,
    0x28, 0x1100, 0x29, 0x3201, 3, 0x28, 0x1102, 0x29, 0x3202, 3, 0x28, 0x1103, 0x29,
    0x3203, 3, 0x28, 0x1105, 0x29, 0x3204, 3, 0x28, 0x1106, 0x29, 0x3205, 3, 0x28, 0x1107,
    0x29, 0x3206, 3, 0x28, 0x1109, 0x29, 0x3207, 3, 0x28, 0x110B, 0x29, 0x3208, 3, 0x28,
    0x110C, 0x29, 0x3209, 3, 0x28, 0x110E, 0x29, 0x320A, 3, 0x28, 0x110F, 0x29, 0x320B, 3,
    0x28, 0x1110, 0x29, 0x320C, 3, 0x28, 0x1111, 0x29, 0x320D, 3, 0x28, 0x1112, 0x29,
    0x33A7, 3, 0x6D, 0x2215, 0x73, 0x33A8, 4, 0x6D, 0x2215, 0x73, 0x32, 0x33AE, 5, 0x72,
    0x61, 0x64, 0x2215, 0x73, 0x33AF, 6, 0x72, 0x61, 0x64, 0x2215, 0x73, 0x32, 0x33C6, 4,
    0x63, 0x2215, 0x6B, 0x67, 0x33DE, 3, 0x76, 0x2215, 0x6D, 0x33DF, 3, 0x61, 0x2215, 0x6D,
    0xFCF2, 3, 0x640, 0x64E, 0x651, 0xFCF3, 3, 0x640, 0x64F, 0x651, 0xFCF4, 3, 0x640, 0x650,
    0x651, 0xFDFA, 18, 0x635, 0x644, 0x649, 0x20, 0x627, 0x644, 0x644, 0x647, 0x20, 0x639,
    0x644, 0x64A, 0x647, 0x20, 0x648, 0x633, 0x644, 0x645, 0xFDFB, 8, 0x62C, 0x644, 0x20,
    0x62C, 0x644, 0x627, 0x644, 0x647, 0xFE71, 2, 0x640, 0x64B, 0xFE77, 2, 0x640, 0x64E,
    0xFE79, 2, 0x640, 0x64F, 0xFE7B, 2, 0x640, 0x650, 0xFE7D, 2, 0x640, 0x651, 0xFE7F, 2,
    0x640, 0x652, 0x1D15E, 2, 0x1D157, 0x1D165, 0x1D15F, 2, 0x1D158, 0x1D165, 0x1D160, 3,
    0x1D158, 0x1D165, 0x1D16E, 0x1D161, 3, 0x1D158, 0x1D165, 0x1D16F, 0x1D162, 3, 0x1D158,
    0x1D165, 0x1D170, 0x1D163, 3, 0x1D158, 0x1D165, 0x1D171, 0x1D164, 3, 0x1D158, 0x1D165,
    0x1D172, 0x1D1BB, 2, 0x1D1B9, 0x1D165, 0x1D1BC, 2, 0x1D1BA, 0x1D165, 0x1D1BD, 3,
    0x1D1B9, 0x1D165, 0x1D16E, 0x1D1BE, 3, 0x1D1BA, 0x1D165, 0x1D16E, 0x1D1BF, 3, 0x1D1B9,
    0x1D165, 0x1D16F, 0x1D1C0, 3, 0x1D1BA, 0x1D165, 0x1D16F, 0x1F12A, 3, 0x3014, 0x73,
    0x3015, 0x1F240, 3, 0x3014, 0x672C, 0x3015, 0x1F241, 3, 0x3014, 0x4E09, 0x3015, 0x1F242,
    3, 0x3014, 0x4E8C, 0x3015, 0x1F243, 3, 0x3014, 0x5B89, 0x3015, 0x1F244, 3, 0x3014,
    0x70B9, 0x3015, 0x1F245, 3, 0x3014, 0x6253, 0x3015, 0x1F246, 3, 0x3014, 0x76D7, 0x3015,
    0x1F247, 3, 0x3014, 0x52DD, 0x3015, 0x1F248, 3, 0x3014, 0x6557, 0x3015,
};

/* Code points UTS #46 17.0 ignores (maps to nothing); they are removed before libidn2 sees
 * a label (libidn2 rejects some of them). */
static const uint32_t idna_ignore[][2] = {
    {0xAD, 0xAD}, {0x34F, 0x34F}, {0x115F, 0x1160}, {0x17B4, 0x17B5}, {0x180B, 0x180F},
    {0x200B, 0x200B}, {0x2060, 0x2064}, {0x206A, 0x206F}, {0x3164, 0x3164},
    {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF}, {0xFFA0, 0xFFA0}, {0x1BCA0, 0x1BCA3},
    {0x1D173, 0x1D17A}, {0xE0100, 0xE01EF},
};

/* Code points of bidi class R, AL or AN (Unicode 14), plus unassigned code points in
 * right-to-left blocks: a domain with one of these is a "bidi domain name". */
static const uint32_t bidi_rtl[][2] = {
    {0x590, 0x590}, {0x5BE, 0x5BE}, {0x5C0, 0x5C0}, {0x5C3, 0x5C3}, {0x5C6, 0x5C6},
    {0x5C8, 0x605}, {0x608, 0x608}, {0x60B, 0x60B}, {0x60D, 0x60D}, {0x61B, 0x64A},
    {0x660, 0x669}, {0x66B, 0x66F}, {0x671, 0x6D5}, {0x6DD, 0x6DD}, {0x6E5, 0x6E6},
    {0x6EE, 0x6EF}, {0x6FA, 0x710}, {0x712, 0x72F}, {0x74B, 0x7A5}, {0x7B1, 0x7EA},
    {0x7F4, 0x7F5}, {0x7FA, 0x7FC}, {0x7FE, 0x815}, {0x81A, 0x81A}, {0x824, 0x824},
    {0x828, 0x828}, {0x82E, 0x858}, {0x85C, 0x897}, {0x8A0, 0x8C9}, {0x8E2, 0x8E2},
    {0x200F, 0x200F}, {0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28}, {0xFB2A, 0xFD3D}, {0xFD50, 0xFDCE},
    {0xFDD0, 0xFDFC}, {0xFE70, 0xFEFE}, {0x10800, 0x1091E}, {0x10920, 0x10A00},
    {0x10A04, 0x10A04}, {0x10A07, 0x10A0B}, {0x10A10, 0x10A37}, {0x10A3B, 0x10A3E},
    {0x10A40, 0x10AE4}, {0x10AE7, 0x10B38}, {0x10B40, 0x10D23}, {0x10D28, 0x10EAA},
    {0x10EAD, 0x10F45}, {0x10F51, 0x10F81}, {0x10F86, 0x10FFF}, {0x1E800, 0x1E8CF},
    {0x1E8D7, 0x1E943}, {0x1E94B, 0x1EEEF}, {0x1EEF2, 0x1EFFF},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid][0])
            hi = mid;
        else if (c > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static int fail(const char *msg)
{
    return ir_fail(IROH_ERR_INVALID_ADDR, "%s", msg);
}

static int no_memory(void)
{
    return ir_fail(IROH_ERR_NO_MEMORY, "out of memory");
}

/* ---- code point vectors and UTF-8 ----------------------------------------------------- */

typedef struct cpvec {
    uint32_t *v;
    size_t len, cap;
    int oom;
} cpvec;

static void cp_push(cpvec *c, uint32_t x)
{
    if (c->oom)
        return;
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        uint32_t *p = cap > SIZE_MAX / sizeof *p ? NULL : realloc(c->v, cap * sizeof *p);
        if (!p) {
            c->oom = 1;
            return;
        }
        c->v = p;
        c->cap = cap;
    }
    c->v[c->len++] = x;
}

static void cp_append(cpvec *c, const uint32_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp_push(c, x[i]);
}

static void cp_free(cpvec *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

/* Strict UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
 * Returns 0, or -1 for ill-formed input. */
static int utf8_decode(const uint8_t *s, size_t n, cpvec *out)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], min;
        size_t k;
        if (c < 0x80) {
            cp_push(out, c);
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1, c &= 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2, c &= 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return -1;
        }
        if (n - i <= k)
            return -1;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return -1;
            c = c << 6 | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return -1;
        cp_push(out, c);
        i += k + 1;
    }
    return 0;
}

/* Writes the UTF-8 form of c to t; returns its length. */
static size_t utf8_encode(uint32_t c, uint8_t t[4])
{
    if (c < 0x80) {
        t[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        t[0] = (uint8_t)(0xC0 | c >> 6), t[1] = (uint8_t)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        t[0] = (uint8_t)(0xE0 | c >> 12), t[1] = (uint8_t)(0x80 | (c >> 6 & 0x3F));
        t[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    t[0] = (uint8_t)(0xF0 | c >> 18), t[1] = (uint8_t)(0x80 | (c >> 12 & 0x3F));
    t[2] = (uint8_t)(0x80 | (c >> 6 & 0x3F)), t[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

static void utf8_put(ir_buf *b, uint32_t c)
{
    uint8_t t[4];
    ir_buf_append(b, t, utf8_encode(c, t));
}

static int is_alpha(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(uint32_t c)
{
    return is_alpha(c) || is_digit(c);
}

static int hex_value(uint32_t c)
{
    if (c >= '0' && c <= '9')
        return (int)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (int)(c - 'A' + 10);
    return -1;
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* ---- percent-encoding --------------------------------------------------------------- */

enum pct_set { SET_C0, SET_FRAGMENT, SET_QUERY, SET_SPECIAL_QUERY, SET_PATH, SET_USERINFO };

/* Whether the ASCII code point c is in the set (every set holds C0 controls and all code
 * points above '~'). The sets are those of the `url` crate, see the top of this file. */
static int in_set(enum pct_set s, uint32_t c)
{
    if (c < 0x20 || c > 0x7E)
        return 1;
    switch (s) {
    case SET_C0:
        return 0;
    case SET_FRAGMENT:
        return c == ' ' || c == '"' || c == '<' || c == '>' || c == '`';
    case SET_QUERY:
    case SET_SPECIAL_QUERY:
        return c == ' ' || c == '"' || c == '#' || c == '<' || c == '>' ||
               (s == SET_SPECIAL_QUERY && c == '\'');
    case SET_PATH:
    case SET_USERINFO:
        if (c == ' ' || c == '"' || c == '#' || c == '<' || c == '>' || c == '?' ||
            c == '`' || c == '{' || c == '}')
            return 1;
        return s == SET_USERINFO && (c == '/' || c == ':' || c == ';' || c == '=' ||
                                     c == '@' || c == '[' || c == '\\' || c == ']' ||
                                     c == '^' || c == '|');
    }
    return 1;
}

/* UTF-8 percent-encodes one code point into b. */
static void pct_put(ir_buf *b, uint32_t c, enum pct_set s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (c < 0x80 && !in_set(s, c)) {
        ir_buf_byte(b, (uint8_t)c);
        return;
    }
    uint8_t tmp[4];
    size_t len = utf8_encode(c, tmp);
    for (size_t i = 0; i < len; i++) {
        char e[3] = {'%', hex[tmp[i] >> 4], hex[tmp[i] & 15]};
        ir_buf_append(b, e, 3);
    }
}

/* ---- punycode (RFC 3492) -------------------------------------------------------------- */

enum { PC_BASE = 36, PC_TMIN = 1, PC_TMAX = 26, PC_SKEW = 38, PC_DAMP = 700 };

static uint32_t pc_adapt(uint32_t delta, uint32_t points, int first)
{
    uint32_t k = 0;
    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / points;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static uint32_t pc_threshold(uint32_t k, uint32_t bias)
{
    if (k <= bias)
        return PC_TMIN;
    if (k >= bias + PC_TMAX)
        return PC_TMAX;
    return k - bias;
}

static char pc_digit(uint32_t d)
{
    return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* Appends the punycode form of cp (without "xn--") to out. Returns 0 or -1 on overflow. */
static int puny_encode(const uint32_t *cp, size_t n, ir_buf *out)
{
    uint64_t delta = 0;
    uint32_t next = 0x80, bias = 72;
    size_t h = 0, b;
    for (size_t i = 0; i < n; i++) {
        if (cp[i] < 0x80) {
            ir_buf_byte(out, (uint8_t)cp[i]);
            h++;
        }
    }
    b = h;
    if (b > 0)
        ir_buf_byte(out, '-');
    while (h < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cp[i] >= next && cp[i] < m)
                m = cp[i];
        delta += (uint64_t)(m - next) * (h + 1);
        if (delta > UINT32_MAX)
            return -1;
        next = m;
        for (size_t i = 0; i < n; i++) {
            if (cp[i] < next && ++delta > UINT32_MAX)
                return -1;
            if (cp[i] == next) {
                uint32_t q = (uint32_t)delta;
                for (uint32_t k = PC_BASE;; k += PC_BASE) {
                    uint32_t t = pc_threshold(k, bias);
                    if (q < t)
                        break;
                    ir_buf_byte(out, (uint8_t)pc_digit(t + (q - t) % (PC_BASE - t)));
                    q = (q - t) / (PC_BASE - t);
                }
                ir_buf_byte(out, (uint8_t)pc_digit(q));
                bias = pc_adapt((uint32_t)delta, (uint32_t)(h + 1), h == b);
                delta = 0;
                h++;
            }
        }
        delta++;
        next++;
    }
    return 0;
}

/* Decodes punycode s (without "xn--") into out, which must be empty. Returns 0, or -1 if
 * s is not valid (or memory ran out: out->oom). */
static int puny_decode(const char *s, size_t n, cpvec *out)
{
    size_t start = 0, b = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '-')
            b = i, start = i + 1;
    if (start == 1) /* a delimiter in first place: no basic code points, RFC 3492 6.2 */
        start = 0, b = 0;
    for (size_t i = 0; i < b; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return -1;
        cp_push(out, (unsigned char)s[i]);
    }
    uint32_t next = 0x80, bias = 72;
    uint64_t i = 0;
    size_t in = start;
    while (in < n) {
        uint64_t oldi = i, w = 1;
        for (uint32_t k = PC_BASE;; k += PC_BASE) {
            if (in >= n)
                return -1;
            int c = (unsigned char)s[in++], d;
            if (c >= 'a' && c <= 'z')
                d = c - 'a';
            else if (c >= 'A' && c <= 'Z')
                d = c - 'A';
            else if (c >= '0' && c <= '9')
                d = c - '0' + 26;
            else
                return -1;
            i += (uint64_t)d * w;
            if (i > UINT32_MAX)
                return -1;
            uint32_t t = pc_threshold(k, bias);
            if ((uint32_t)d < t)
                break;
            w *= PC_BASE - t;
            if (w > UINT32_MAX)
                return -1;
        }
        size_t count = out->len + 1;
        bias = pc_adapt((uint32_t)(i - oldi), (uint32_t)count, oldi == 0);
        uint64_t nn = next + i / count;
        if (nn > 0x10FFFF || (nn >= 0xD800 && nn <= 0xDFFF))
            return -1;
        next = (uint32_t)nn;
        i %= count;
        cp_push(out, 0);
        if (out->oom)
            return -1;
        memmove(out->v + i + 1, out->v + i, (out->len - 1 - (size_t)i) * sizeof *out->v);
        out->v[i] = next;
        i++;
    }
    return 0;
}

/* ---- IDNA (UTS #46 ToASCII of one label) --------------------------------------------- */

enum { IDNA_OK = 0, IDNA_BAD = 1 };

/* The idna crate's limits against quadratic punycode work (ICU's too): a mapped label that
 * is not ASCII may have 1000 code points, the punycode of an A-label 2000 characters. */
enum { IDNA_MAX_ULABEL = 1000, IDNA_MAX_PUNYCODE = 2000 };

static int all_ascii(const uint32_t *cp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cp[i] >= 0x80)
            return 0;
    return 1;
}

static int starts_xn(const uint32_t *cp, size_t n)
{
    return n >= 4 && ascii_lower(cp[0]) == 'x' && ascii_lower(cp[1]) == 'n' && cp[2] == '-' &&
           cp[3] == '-';
}

/* Runs libidn2 on one label and appends the mapped label (Unicode) to `mapped`. Returns
 * IDNA_OK, IDNA_BAD with *idn2_rc set, or IROH_ERR_NO_MEMORY. */
static int idn2_map(const uint32_t *cp, size_t n, cpvec *mapped, int *idn2_rc)
{
    ir_buf s;
    char *o = NULL;
    int r = IDNA_OK;
    ir_buf_init(&s);
    for (size_t i = 0; i < n; i++)
        utf8_put(&s, cp[i]);
    ir_buf_byte(&s, 0);
    if (s.oom) {
        ir_buf_free(&s);
        return IROH_ERR_NO_MEMORY;
    }
    *idn2_rc = idn2_to_ascii_8z((const char *)s.data, &o,
                                IDN2_NONTRANSITIONAL | IDN2_NO_ALABEL_ROUNDTRIP);
    ir_buf_free(&s);
    if (*idn2_rc == IDN2_MALLOC)
        return IROH_ERR_NO_MEMORY;
    if (*idn2_rc != IDN2_OK || !o) {
        idn2_free(o);
        return IDNA_BAD;
    }
    size_t len = strlen(o);
    if (len >= 4 && memcmp(o, "xn--", 4) == 0) {
        cpvec d = {0};
        if (puny_decode(o + 4, len - 4, &d) != 0)
            r = d.oom ? IROH_ERR_NO_MEMORY : IDNA_BAD;
        else
            cp_append(mapped, d.v, d.len);
        cp_free(&d);
    } else {
        for (size_t i = 0; i < len; i++)
            cp_push(mapped, ascii_lower((unsigned char)o[i]));
    }
    idn2_free(o);
    if (mapped->oom)
        return IROH_ERR_NO_MEMORY;
    return r;
}

/* libidn2 errors for which the label is converted in pieces (see the top of the file). */
static int idn2_rc_is_idna2008_only(int rc)
{
    return rc == IDN2_DISALLOWED || rc == IDN2_UNASSIGNED || rc == IDN2_HYPHEN_STARTEND ||
           rc == IDN2_2HYPHEN || rc == IDN2_PUNYCODE_BIG_OUTPUT || rc == IDN2_TOO_BIG_LABEL ||
           rc == IDN2_TOO_BIG_DOMAIN || rc == IDN2_INVALID_NONTRANSITIONAL;
}

static int piece_separator(uint32_t c)
{
    if (c < 0x80)
        return !is_alnum(c);
    return in_ranges(idna_pass, NELEM(idna_pass), c);
}

/* The part of the UTS #46 mapping done here rather than by libidn2 (see the top of the
 * file): appends the mapping of c to pre. */
static void premap(cpvec *pre, uint32_t c)
{
    if (c < 0x80) {
        cp_push(pre, ascii_lower(c));
        return;
    }
    if (in_ranges(idna_ignore, NELEM(idna_ignore), c))
        return;
    if (c >= 0xFF01 && c <= 0xFF5E) { /* fullwidth ASCII */
        cp_push(pre, ascii_lower(c - 0xFEE0));
        return;
    }
    size_t lo = 0, hi = NELEM(idna_map1);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < (uint32_t)idna_map1[mid][0]) {
            hi = mid;
        } else if (c > (uint32_t)idna_map1[mid][1]) {
            lo = mid + 1;
        } else {
            cp_push(pre, (uint32_t)((int32_t)c + idna_map1[mid][2]));
            return;
        }
    }
    for (size_t i = 0; i < NELEM(idna_mapn) && idna_mapn[i] <= c; i += 2 + idna_mapn[i + 1]) {
        if (idna_mapn[i] == c) {
            cp_append(pre, idna_mapn + i + 2, idna_mapn[i + 1]);
            return;
        }
    }
    cp_push(pre, c);
}

/* Canonical composition of Hangul jamo (the part of NFC that the pieces need: the other
 * code points kept by map_pieces() compose with nothing). */
static void hangul_compose(cpvec *m)
{
    size_t w = 0;
    for (size_t i = 0; i < m->len; i++) {
        uint32_t c = m->v[i], last = w ? m->v[w - 1] : 0;
        if (last >= 0x1100 && last <= 0x1112 && c >= 0x1161 && c <= 0x1175) {
            m->v[w - 1] = 0xAC00 + ((last - 0x1100) * 21 + (c - 0x1161)) * 28;
            continue;
        }
        if (last >= 0xAC00 && last <= 0xD7A3 && (last - 0xAC00) % 28 == 0 && c >= 0x11A8 &&
            c <= 0x11C2) {
            m->v[w - 1] = last + (c - 0x11A7);
            continue;
        }
        m->v[w++] = c;
    }
    m->len = w;
}

/* Letters of bidi class L in common scripts: an approximation, to judge the ends of a
 * left-to-right label in a bidi domain name. */
static int is_ltr_letter(uint32_t c)
{
    static const uint32_t r[][2] = {
        {'A', 'Z'}, {'a', 'z'}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6},
        {0xD8, 0xF6}, {0xF8, 0x2B8}, {0x2BB, 0x2C1}, {0x2D0, 0x2D1}, {0x2E0, 0x2E4},
        {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D},
        {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x3F5}, {0x3F7, 0x482}, {0x48A, 0x52F},
        {0x531, 0x556}, {0x560, 0x588}, {0x904, 0x939}, {0x93D, 0x93D}, {0x950, 0x950},
        {0x958, 0x961}, {0x966, 0x96F}, {0xE01, 0xE30}, {0xE32, 0xE33}, {0xE40, 0xE46},
        {0xE50, 0xE59}, {0x10A0, 0x10FA}, {0x1100, 0x11FF}, {0x1C90, 0x1CBF},
        {0x1E00, 0x1FBC}, {0x2160, 0x2188}, {0x2C00, 0x2CE4}, {0x2D00, 0x2D2D},
        {0x3005, 0x3007}, {0x3021, 0x3029}, {0x3031, 0x3035}, {0x303B, 0x303C},
        {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF},
        {0x3131, 0x318E}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xA640, 0xA66E},
        {0xA680, 0xA69D}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF}, {0x10000, 0x100FA},
        {0x20000, 0x2FA1F},
    };
    return in_ranges(r, NELEM(r), c);
}

/* Non-spacing marks (bidi class NSM) of the common combining blocks: an approximation. */
static int is_nsm(uint32_t c)
{
    static const uint32_t r[][2] = {
        {0x300, 0x36F}, {0x483, 0x489}, {0x591, 0x5BD}, {0x5BF, 0x5BF}, {0x5C1, 0x5C2},
        {0x5C4, 0x5C5}, {0x5C7, 0x5C7}, {0x610, 0x61A}, {0x64B, 0x65F}, {0x670, 0x670},
        {0x6D6, 0x6DC}, {0x6DF, 0x6E4}, {0x6E7, 0x6E8}, {0x6EA, 0x6ED}, {0x900, 0x902},
        {0x93A, 0x93A}, {0x93C, 0x93C}, {0x941, 0x948}, {0x94D, 0x94D}, {0x951, 0x957},
        {0x962, 0x963}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x20D0, 0x20FF},
        {0xFE20, 0xFE2F},
    };
    return in_ranges(r, NELEM(r), c);
}

/* RFC 5893 rules 1 and 6 for a left-to-right label in a bidi domain name: it starts with a
 * letter and ends with a letter or digit (then maybe marks). Letters outside the common
 * scripts of is_ltr_letter() fail: when unsure, reject. */
static int bidi_ltr_label_ok(const uint32_t *cp, size_t n)
{
    while (n > 0 && is_nsm(cp[n - 1]))
        n--;
    if (n == 0)
        return 1;
    return is_ltr_letter(cp[0]) && (is_ltr_letter(cp[n - 1]) || is_digit(cp[n - 1]));
}

static int is_rtl(uint32_t c)
{
    return c >= 0x80 && in_ranges(bidi_rtl, NELEM(bidi_rtl), c);
}

/* Bidi class AN (Arabic digits and the like). */
static int is_arabic_number(uint32_t c)
{
    return (c >= 0x600 && c <= 0x605) || (c >= 0x660 && c <= 0x669) || c == 0x66B ||
           c == 0x66C || c == 0x6DD || c == 0x890 || c == 0x891 || c == 0x8E2 ||
           (c >= 0x10D30 && c <= 0x10D39) || (c >= 0x10E60 && c <= 0x10E7E);
}

static int is_pass_mark(uint32_t c)
{
    return in_ranges(idna_pass_mark, NELEM(idna_pass_mark), c);
}

/* European digits (bidi class EN) a right-to-left label may end with. */
static int is_en_digit(uint32_t c)
{
    return is_digit(c) || (c >= 0x6F0 && c <= 0x6F9);
}

/* RFC 5893 rules 1 to 4 for a right-to-left label, approximated with the tables above
 * (libidn2 checks them too inside the label, but not exactly as Rust does): it starts with
 * a right-to-left letter, ends with a right-to-left character or a digit (then maybe
 * marks), has no left-to-right letter, and not both European and Arabic digits. */
static int bidi_rtl_label_ok(const uint32_t *cp, size_t n)
{
    int en = 0, an = 0;
    size_t end = n;
    while (end > 0 && (is_nsm(cp[end - 1]) || is_pass_mark(cp[end - 1])))
        end--;
    if (end == 0 || !is_rtl(cp[0]) || is_arabic_number(cp[0]) ||
        !(is_rtl(cp[end - 1]) || is_en_digit(cp[end - 1])))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (is_ltr_letter(cp[i]))
            return 0;
        en |= is_en_digit(cp[i]);
        an |= is_arabic_number(cp[i]);
    }
    return !(en && an);
}

/* Whether a long run may be cut before cp[k] without changing its mapping: both code
 * points map on their own, and together to the two mappings one after the other (no
 * composition, no context rule across the cut). */
static int safe_cut(const uint32_t *cp, size_t k)
{
    cpvec a = {0}, b = {0}, ab = {0};
    int rc, ok = idn2_map(cp + k - 1, 1, &a, &rc) == IDNA_OK &&
                 idn2_map(cp + k, 1, &b, &rc) == IDNA_OK &&
                 idn2_map(cp + k - 1, 2, &ab, &rc) == IDNA_OK && ab.len == a.len + b.len;
    for (size_t i = 0; ok && i < ab.len; i++)
        ok = ab.v[i] == (i < a.len ? a.v[i] : b.v[i - a.len]);
    cp_free(&a);
    cp_free(&b);
    cp_free(&ab);
    return ok;
}

static int is_big(int rc)
{
    return rc == IDN2_PUNYCODE_BIG_OUTPUT || rc == IDN2_TOO_BIG_LABEL;
}

/* Maps one run of a label with libidn2. A run that starts with a combining mark (it
 * follows a kept symbol) is mapped behind a base letter that composes with nothing
 * ('q', or alef for right-to-left text), which is then taken off again. */
static int map_short(const uint32_t *cp, size_t n, uint32_t prev, int at_label_start,
                     cpvec *m, int *rc)
{
    int r = idn2_map(cp, n, m, rc);
    if (r != IDNA_BAD || *rc != IDN2_LEADING_COMBINING || at_label_start)
        return r;
    /* A mark after one of these could compose with it (e.g. '=' U+0338 is U+2260). */
    if (prev == '<' || prev == '=' || prev == '>' || (prev >= 0x2190 && prev <= 0x22FF))
        return IDNA_BAD;
    static const uint32_t bases[2] = {'q', 0x5D0};
    for (size_t b = 0; b < 2; b++) {
        cpvec with = {0}, out = {0};
        cp_push(&with, bases[b]);
        cp_append(&with, cp, n);
        r = with.oom ? IROH_ERR_NO_MEMORY : idn2_map(with.v, with.len, &out, rc);
        if (r == IDNA_OK && (out.len == 0 || out.v[0] != bases[b]))
            r = IDNA_BAD;
        if (r == IDNA_OK)
            cp_append(m, out.v + 1, out.len - 1);
        cp_free(&with);
        cp_free(&out);
        if (r != IDNA_BAD || is_big(*rc))
            return r;
    }
    return IDNA_BAD;
}

/* Maps a run, one too long for libidn2 (more than 63 bytes once encoded) in chunks of
 * about a dozen code points, cut where safe_cut() allows (and, in right-to-left text,
 * before a right-to-left letter, as each chunk must pass the bidi rules alone). */
static int map_run(const uint32_t *cp, size_t n, uint32_t prev, int at_label_start, cpvec *m)
{
    enum { CHUNK = 12 };
    int rc = 0, r = map_short(cp, n, prev, at_label_start, m, &rc), rtl = 0;
    if (r != IDNA_BAD || !is_big(rc))
        return r;
    for (size_t i = 0; i < n; i++)
        rtl |= is_rtl(cp[i]);
    for (size_t start = 0; start < n;) {
        size_t k = start + CHUNK;
        if (k >= n) {
            k = n;
        } else {
            while (k < n && k < start + 3 * CHUNK &&
                   !((!rtl || (is_rtl(cp[k]) && !is_arabic_number(cp[k]))) && safe_cut(cp, k)))
                k++;
            if (k == start + 3 * CHUNK)
                return IDNA_BAD;
        }
        r = map_short(cp + start, k - start, start ? cp[start - 1] : prev,
                      start ? 0 : at_label_start, m, &rc);
        if (r != IDNA_OK)
            return r;
        start = k;
    }
    return IDNA_OK;
}

/* Maps a label in pieces: ASCII symbols and idna_pass[] code points are kept, the runs
 * between them go through libidn2 one by one. In a right-to-left label, a run without
 * right-to-left characters may only hold ASCII digits (see also bidi_rtl_label_ok()). */
static int map_pieces(const uint32_t *cp, size_t n, cpvec *m)
{
    int r = IDNA_OK, rtl = 0;
    for (size_t i = 0; i < n; i++)
        rtl |= is_rtl(cp[i]);
    if (n > 0 && is_pass_mark(cp[0]))
        return IDNA_BAD;
    if (rtl && !bidi_rtl_label_ok(cp, n))
        return IDNA_BAD;
    for (size_t i = 0; i < n && r == IDNA_OK;) {
        if (piece_separator(cp[i])) {
            cp_push(m, cp[i++]);
            continue;
        }
        size_t j = i;
        int run_rtl = 0, run_other = 0;
        for (; j < n && !piece_separator(cp[j]); j++) {
            run_rtl |= is_rtl(cp[j]);
            run_other |= !is_digit(cp[j]);
        }
        if (rtl && !run_rtl && run_other)
            return IDNA_BAD;
        if (all_ascii(cp + i, j - i))
            cp_append(m, cp + i, j - i);
        else
            r = map_run(cp + i, j - i, i ? cp[i - 1] : 0, i == 0, m);
        i = j;
    }
    hangul_compose(m);
    return r;
}

static int label_from_alabel(const uint8_t *l, size_t n, ir_buf *out, cpvec *uni);

/* UTS #46 processing of a label that is not pure ASCII: appends its ASCII form to out and
 * its mapped Unicode form to uni. With check_alabel, an "xn--" result is verified to read
 * back to itself. Returns IDNA_OK, IDNA_BAD or IROH_ERR_NO_MEMORY. */
static int label_from_ulabel(const uint32_t *cp, size_t n, int check_alabel, ir_buf *out,
                             cpvec *uni)
{
    cpvec pre = {0}, m = {0};
    ir_buf enc;
    int r = IDNA_OK, rc = 0;
    ir_buf_init(&enc);
    for (size_t i = 0; i < n; i++)
        premap(&pre, cp[i]);
    if (pre.oom) {
        r = IROH_ERR_NO_MEMORY;
        goto done;
    }
    if (all_ascii(pre.v, pre.len)) {
        /* Only ignored or mapped code points were not ASCII: an ASCII label after all. */
        for (size_t i = 0; i < pre.len; i++)
            ir_buf_byte(&enc, (uint8_t)pre.v[i]);
        if (enc.oom) {
            r = IROH_ERR_NO_MEMORY;
        } else if (starts_xn(pre.v, pre.len)) {
            /* "xn--" in fullwidth letters and the like. Without check_alabel, cp is a
             * decoded A-label, which must not change under the mapping: invalid. */
            r = check_alabel ? label_from_alabel(enc.data, enc.len, out, uni) : IDNA_BAD;
        } else {
            ir_buf_append(out, enc.data, enc.len);
            cp_append(uni, pre.v, pre.len);
        }
        goto done;
    }
    /* NFC shortens a label at most fourfold: a longer one is over the limit in any case. */
    if (pre.len > 4 * IDNA_MAX_ULABEL) {
        r = IDNA_BAD;
        goto done;
    }
    r = idn2_map(pre.v, pre.len, &m, &rc);
    if (r == IDNA_BAD && idn2_rc_is_idna2008_only(rc)) {
        m.len = 0;
        r = map_pieces(pre.v, pre.len, &m);
    }
    if (r == IDNA_OK && m.oom)
        r = IROH_ERR_NO_MEMORY;
    if (r != IDNA_OK)
        goto done;
    for (size_t i = 0; i < m.len; i++) {
        if (m.v[i] == '.') { /* libidn2 mapped to several labels */
            r = IDNA_BAD;
            goto done;
        }
    }
    if (starts_xn(m.v, m.len)) {
        r = IDNA_BAD;
        goto done;
    }
    if (all_ascii(m.v, m.len)) {
        for (size_t i = 0; i < m.len; i++)
            ir_buf_byte(&enc, (uint8_t)m.v[i]);
    } else if (m.len > IDNA_MAX_ULABEL) {
        r = IDNA_BAD;
        goto done;
    } else {
        ir_buf_append(&enc, "xn--", 4);
        if (puny_encode(m.v, m.len, &enc) != 0) {
            r = IDNA_BAD;
            goto done;
        }
    }
    if (enc.oom) {
        r = IROH_ERR_NO_MEMORY;
        goto done;
    }
    if (check_alabel && enc.len >= 4 && memcmp(enc.data, "xn--", 4) == 0) {
        ir_buf check;
        cpvec u2 = {0};
        ir_buf_init(&check);
        r = label_from_alabel(enc.data, enc.len, &check, &u2);
        ir_buf_free(&check);
        cp_free(&u2);
        if (r != IDNA_OK)
            goto done;
    }
    ir_buf_append(out, enc.data, enc.len);
    cp_append(uni, m.v, m.len);
done:
    ir_buf_free(&enc);
    cp_free(&pre);
    cp_free(&m);
    return r;
}

/* An ASCII label starting with "xn--" (lowercase): valid when its punycode decodes to a
 * label that is not all ASCII, does not start with "xn--" and converts back to l. */
static int label_from_alabel(const uint8_t *l, size_t n, ir_buf *out, cpvec *uni)
{
    cpvec u = {0}, m = {0};
    ir_buf back;
    int r;
    ir_buf_init(&back);
    if (n - 4 > IDNA_MAX_PUNYCODE || puny_decode((const char *)l + 4, n - 4, &u) != 0 ||
        u.len == 0 || all_ascii(u.v, u.len) || starts_xn(u.v, u.len)) {
        r = u.oom ? IROH_ERR_NO_MEMORY : IDNA_BAD;
        goto done;
    }
    r = label_from_ulabel(u.v, u.len, 0, &back, &m);
    if (r == IDNA_OK && back.oom)
        r = IROH_ERR_NO_MEMORY;
    if (r == IDNA_OK && (back.len != n || memcmp(back.data, l, n) != 0))
        r = IDNA_BAD;
    if (r == IDNA_OK) {
        ir_buf_append(out, l, n);
        cp_append(uni, u.v, u.len);
    }
done:
    ir_buf_free(&back);
    cp_free(&u);
    cp_free(&m);
    return r;
}

static int is_label_dot(uint32_t c)
{
    return c == '.' || c == 0x3002 || c == 0xFF0E || c == 0xFF61;
}

/* The WHATWG forbidden domain code points (ASCII part), which the idna crate denies. */
static int forbidden_domain(uint32_t c)
{
    return c <= 0x20 || c == 0x7F || c == '#' || c == '%' || c == '/' || c == ':' ||
           c == '<' || c == '>' || c == '?' || c == '@' || c == '[' || c == '\\' ||
           c == ']' || c == '^' || c == '|';
}

static int forbidden_host(uint32_t c)
{
    return c == 0 || c == '\t' || c == '\n' || c == '\r' || c == ' ' || c == '#' ||
           c == '/' || c == ':' || c == '<' || c == '>' || c == '?' || c == '@' ||
           c == '[' || c == '\\' || c == ']' || c == '^' || c == '|';
}

/* UTS #46 ToASCII of a whole domain, as the WHATWG "domain to ASCII" (beStrict false).
 * Appends the result to out. Returns IROH_OK or an error code (detail recorded). */
static int domain_to_ascii(const uint32_t *cp, size_t n, ir_buf *out)
{
    cpvec uni = {0};
    size_t *bounds = NULL; /* label i of uni is [bounds[2i], bounds[2i+1]) */
    size_t nlabels = 0, cap = 0;
    int r = IROH_OK, bidi = 0;
    for (size_t i = 0; i < n; i++)
        if (cp[i] < 0x80 && forbidden_domain(cp[i]))
            return fail("forbidden code point in host");
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && !is_label_dot(cp[j]))
            j++;
        if (nlabels == cap) {
            size_t nc = cap ? cap * 2 : 8;
            size_t *p = realloc(bounds, nc * 2 * sizeof *p);
            if (!p) {
                r = no_memory();
                goto done;
            }
            bounds = p, cap = nc;
        }
        bounds[2 * nlabels] = uni.len;
        int lr;
        if (all_ascii(cp + i, j - i)) {
            size_t start = out->len;
            for (size_t k = i; k < j; k++)
                ir_buf_byte(out, (uint8_t)ascii_lower(cp[k]));
            if (out->oom) {
                r = no_memory();
                goto done;
            }
            if (j - i >= 4 && starts_xn(cp + i, j - i)) {
                ir_buf lab;
                ir_buf_init(&lab);
                ir_buf_append(&lab, out->data + start, out->len - start);
                out->len = start;
                lr = lab.oom ? IROH_ERR_NO_MEMORY
                             : label_from_alabel(lab.data, lab.len, out, &uni);
                ir_buf_free(&lab);
            } else {
                for (size_t k = i; k < j; k++)
                    cp_push(&uni, ascii_lower(cp[k]));
                lr = IDNA_OK;
            }
        } else {
            lr = label_from_ulabel(cp + i, j - i, 1, out, &uni);
        }
        if (lr == IDNA_OK && (uni.oom || out->oom))
            lr = IROH_ERR_NO_MEMORY;
        if (lr == IDNA_BAD) {
            r = fail("invalid international domain name");
            goto done;
        }
        if (lr != IDNA_OK) {
            r = no_memory();
            goto done;
        }
        bounds[2 * nlabels + 1] = uni.len;
        nlabels++;
        if (j == n)
            break;
        ir_buf_byte(out, '.');
        i = j + 1;
    }
    for (size_t i = 0; i < uni.len; i++)
        bidi |= is_rtl(uni.v[i]);
    if (bidi) {
        for (size_t l = 0; l < nlabels; l++) {
            const uint32_t *lv = uni.v + bounds[2 * l];
            size_t ln = bounds[2 * l + 1] - bounds[2 * l], k;
            for (k = 0; k < ln; k++)
                if (is_rtl(lv[k]))
                    break;
            if (k == ln ? !bidi_ltr_label_ok(lv, ln) : !bidi_rtl_label_ok(lv, ln)) {
                r = fail("invalid international domain name (bidi rule)");
                goto done;
            }
        }
    }
    if (out->oom)
        r = no_memory();
done:
    cp_free(&uni);
    free(bounds);
    return r;
}

/* ---- IPv4 and IPv6 ------------------------------------------------------------------ */

/* The WHATWG IPv4 number parser on s[0..n). Returns 0 with *v set (*overflow when the
 * value does not fit 32 bits), or -1 when s is not a number. */
static int ipv4_number(const uint8_t *s, size_t n, uint32_t *v, int *overflow)
{
    unsigned radix = 10;
    *v = 0, *overflow = 0;
    if (n == 0)
        return -1;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2, n -= 2, radix = 16;
    else if (n >= 2 && s[0] == '0')
        s += 1, n -= 1, radix = 8;
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int d = hex_value(s[i]);
        if (d < 0 || (unsigned)d >= radix)
            return -1;
        if (!*overflow) {
            acc = acc * radix + (unsigned)d;
            if (acc > UINT32_MAX)
                *overflow = 1;
        }
    }
    *v = (uint32_t)acc;
    return 0;
}

static int ends_in_number(const uint8_t *s, size_t n)
{
    if (n > 0 && s[n - 1] == '.')
        n--;
    size_t start = n;
    while (start > 0 && s[start - 1] != '.')
        start--;
    if (start == n)
        return 0;
    size_t k;
    for (k = start; k < n && is_digit(s[k]); k++)
        ;
    if (k == n)
        return 1;
    uint32_t v;
    int of;
    return ipv4_number(s + start, n - start, &v, &of) == 0;
}

/* The WHATWG IPv4 parser; on success writes the dotted form to out. */
static int ipv4_parse(const uint8_t *s, size_t n, ir_buf *out)
{
    uint32_t nums[4];
    size_t count = 0;
    if (n > 0 && s[n - 1] == '.')
        n--;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        int of;
        while (j < n && s[j] != '.')
            j++;
        if (count == 4 || ipv4_number(s + i, j - i, &nums[count], &of) != 0 || of)
            return fail("invalid IPv4 address");
        count++;
        i = j + 1;
    }
    uint32_t addr = nums[count - 1];
    if (count > 1 && addr >> (8 * (5 - count)) != 0)
        return fail("invalid IPv4 address");
    for (size_t i = 0; i + 1 < count; i++) {
        if (nums[i] > 255)
            return fail("invalid IPv4 address");
        addr += nums[i] << (8 * (3 - i));
    }
    char t[16];
    size_t len = 0;
    for (int i = 3; i >= 0; i--) {
        unsigned b = addr >> (8 * i) & 0xFF;
        if (b >= 100)
            t[len++] = (char)('0' + b / 100);
        if (b >= 10)
            t[len++] = (char)('0' + b / 10 % 10);
        t[len++] = (char)('0' + b % 10);
        if (i)
            t[len++] = '.';
    }
    ir_buf_append(out, t, len);
    return IROH_OK;
}

/* The WHATWG IPv6 parser on the text between the brackets; writes "[...]" to out. */
static int ipv6_parse(const uint32_t *s, size_t n, ir_buf *out)
{
    uint16_t a[8] = {0};
    size_t piece = 0, i = 0;
    long compress = -1;
    if (n > 0 && s[0] == ':') {
        if (n < 2 || s[1] != ':')
            return fail("invalid IPv6 address");
        i = 2;
        piece = 1;
        compress = 1;
    }
    while (i < n) {
        if (piece == 8)
            return fail("invalid IPv6 address");
        if (s[i] == ':') {
            if (compress >= 0)
                return fail("invalid IPv6 address");
            i++;
            piece++;
            compress = (long)piece;
            continue;
        }
        uint32_t value = 0;
        size_t len = 0;
        while (len < 4 && i < n && hex_value(s[i]) >= 0) {
            value = value * 16 + (uint32_t)hex_value(s[i]);
            i++, len++;
        }
        if (i < n && s[i] == '.') {
            if (len == 0)
                return fail("invalid IPv6 address");
            i -= len;
            if (piece > 6)
                return fail("invalid IPv6 address");
            int seen = 0;
            while (i < n) {
                long v4 = -1;
                if (seen > 0) {
                    if (s[i] == '.' && seen < 4)
                        i++;
                    else
                        return fail("invalid IPv6 address");
                }
                if (i >= n || !is_digit(s[i]))
                    return fail("invalid IPv6 address");
                while (i < n && is_digit(s[i])) {
                    long d = (long)(s[i] - '0');
                    if (v4 < 0)
                        v4 = d;
                    else if (v4 == 0)
                        return fail("invalid IPv6 address");
                    else
                        v4 = v4 * 10 + d;
                    if (v4 > 255)
                        return fail("invalid IPv6 address");
                    i++;
                }
                a[piece] = (uint16_t)(a[piece] * 0x100 + v4);
                seen++;
                if (seen == 2 || seen == 4)
                    piece++;
            }
            if (seen != 4)
                return fail("invalid IPv6 address");
            break;
        } else if (i < n && s[i] == ':') {
            i++;
            if (i == n)
                return fail("invalid IPv6 address");
        } else if (i < n) {
            return fail("invalid IPv6 address");
        }
        a[piece++] = (uint16_t)value;
    }
    if (compress >= 0) {
        size_t swaps = piece - (size_t)compress, p = 7;
        while (p != 0 && swaps > 0) {
            uint16_t t = a[p];
            a[p] = a[(size_t)compress + swaps - 1];
            a[(size_t)compress + swaps - 1] = t;
            p--, swaps--;
        }
    } else if (piece != 8) {
        return fail("invalid IPv6 address");
    }
    /* Serialize: compress the first longest run of two or more zero pieces. */
    int best = -1, best_len = 1;
    for (int k = 0; k < 8;) {
        if (a[k] != 0) {
            k++;
            continue;
        }
        int e = k;
        while (e < 8 && a[e] == 0)
            e++;
        if (e - k > best_len)
            best = k, best_len = e - k;
        k = e;
    }
    ir_buf_byte(out, '[');
    for (int k = 0; k < 8; k++) {
        if (k == best) {
            ir_buf_append(out, k == 0 ? "::" : ":", k == 0 ? 2 : 1);
            k += best_len - 1;
            continue;
        }
        static const char hx[] = "0123456789abcdef";
        char t[4];
        int len = 0, started = 0;
        for (int sh = 12; sh >= 0; sh -= 4) {
            int d = a[k] >> sh & 15;
            if (d || started || sh == 0)
                t[len++] = hx[d], started = 1;
        }
        ir_buf_append(out, t, (size_t)len);
        if (k < 7)
            ir_buf_byte(out, ':');
    }
    ir_buf_byte(out, ']');
    return IROH_OK;
}

/* ---- host parser -------------------------------------------------------------------- */

/* The WHATWG host parser for s[0..n) (n > 0 unless opaque); appends the serialized host
 * to out. */
static int host_parse(const uint32_t *s, size_t n, int opaque, ir_buf *out)
{
    if (n > 0 && s[0] == '[') {
        if (s[n - 1] != ']' || n < 2)
            return fail("invalid IPv6 address");
        return ipv6_parse(s + 1, n - 2, out);
    }
    if (opaque) {
        for (size_t i = 0; i < n; i++)
            if (forbidden_host(s[i]))
                return fail("forbidden code point in host");
        for (size_t i = 0; i < n; i++)
            pct_put(out, s[i], SET_C0);
        return out->oom ? no_memory() : IROH_OK;
    }
    /* Percent-decode, then UTF-8 decode (ill-formed UTF-8 is an error, as in Rust). */
    ir_buf bytes;
    cpvec dom = {0};
    int r;
    ir_buf_init(&bytes);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            ir_buf_byte(&bytes, (uint8_t)(hex_value(s[i + 1]) << 4 | hex_value(s[i + 2])));
            i += 2;
        } else {
            utf8_put(&bytes, s[i]);
        }
    }
    if (bytes.oom) {
        r = no_memory();
        goto done;
    }
    if (utf8_decode(bytes.data, bytes.len, &dom) != 0) {
        r = fail("invalid international domain name (not UTF-8 after percent-decoding)");
        goto done;
    }
    if (dom.oom) {
        r = no_memory();
        goto done;
    }
    ir_buf ascii;
    ir_buf_init(&ascii);
    r = domain_to_ascii(dom.v, dom.len, &ascii);
    if (r == IROH_OK) {
        for (size_t i = 0; i < ascii.len; i++) {
            if (forbidden_domain(ascii.data[i])) {
                r = fail("forbidden code point in host");
                break;
            }
        }
    }
    if (r == IROH_OK && ascii.len == 0)
        r = fail("empty host");
    if (r == IROH_OK) {
        if (ends_in_number(ascii.data, ascii.len))
            r = ipv4_parse(ascii.data, ascii.len, out);
        else
            ir_buf_append(out, ascii.data, ascii.len);
    }
    ir_buf_free(&ascii);
done:
    ir_buf_free(&bytes);
    cp_free(&dom);
    return r;
}

/* ---- the URL record and the parser --------------------------------------------------- */

typedef struct url_rec {
    const uint32_t *in; /* the input, trimmed and without tab or newline */
    const uint8_t *tab; /* tab[i]: a tab or newline was removed just before in[i] */
    size_t n;
    ir_buf scheme, user, pass, host;
    int special, file, has_host;
    long port;  /* -1: none (or the scheme's default) */
    int opaque; /* the path is opaque (opath) rather than segments */
    ir_buf opath;
    ir_buf path;  /* the segments, concatenated */
    size_t *seg;  /* start of each segment in path */
    size_t nseg, segcap;
    int seg_oom;
    int has_query, has_fragment;
    ir_buf query, frag;
} url_rec;

static size_t seg_len(const url_rec *u, size_t i)
{
    return (i + 1 < u->nseg ? u->seg[i + 1] : u->path.len) - u->seg[i];
}

static const uint8_t *seg_data(const url_rec *u, size_t i)
{
    return u->path.data ? u->path.data + u->seg[i] : (const uint8_t *)"";
}

static void seg_push(url_rec *u, const uint8_t *s, size_t len)
{
    if (u->seg_oom)
        return;
    if (u->nseg == u->segcap) {
        size_t cap = u->segcap ? u->segcap * 2 : 16;
        size_t *p = cap > SIZE_MAX / sizeof *p ? NULL : realloc(u->seg, cap * sizeof *p);
        if (!p) {
            u->seg_oom = 1;
            return;
        }
        u->seg = p, u->segcap = cap;
    }
    u->seg[u->nseg++] = u->path.len;
    ir_buf_append(&u->path, s, len);
}

static int is_drive_letter(const uint8_t *s, size_t len)
{
    return len == 2 && is_alpha(s[0]) && (s[1] == ':' || s[1] == '|');
}

/* "Shorten a URL's path" as the url crate does it: a last segment that is a Windows drive
 * letter stays, whatever the scheme. */
static void shorten_path(url_rec *u)
{
    if (u->nseg == 0)
        return;
    size_t last = u->nseg - 1;
    if (is_drive_letter(seg_data(u, last), seg_len(u, last)))
        return;
    u->path.len = u->seg[last];
    u->nseg--;
}

static int ieq(const uint8_t *a, size_t n, const char *b)
{
    if (n != strlen(b))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(a[i]) != (uint8_t)b[i])
            return 0;
    return 1;
}

static int is_single_dot(const uint8_t *s, size_t n)
{
    return ieq(s, n, ".") || ieq(s, n, "%2e");
}

static int is_double_dot(const uint8_t *s, size_t n)
{
    return ieq(s, n, "..") || ieq(s, n, ".%2e") || ieq(s, n, "%2e.") || ieq(s, n, "%2e%2e");
}

/* The path state, from *p up to '?', '#' or the end. */
static int parse_path(url_rec *u, size_t *p)
{
    ir_buf buf;
    ir_buf_init(&buf);
    for (;;) {
        int eof = *p >= u->n;
        uint32_t c = eof ? 0 : u->in[*p];
        int slash = !eof && (c == '/' || (u->special && c == '\\'));
        if (eof || slash || c == '?' || c == '#') {
            if (is_double_dot(buf.data, buf.len)) {
                shorten_path(u);
                if (!slash)
                    seg_push(u, NULL, 0);
            } else if (is_single_dot(buf.data, buf.len)) {
                if (!slash)
                    seg_push(u, NULL, 0);
            } else {
                if (u->file && u->nseg == 0 && is_drive_letter(buf.data, buf.len)) {
                    buf.data[1] = ':';
                    u->host.len = 0; /* the url crate drops the host here */
                }
                seg_push(u, buf.data, buf.len);
            }
            buf.len = 0;
            if (!slash)
                break;
            (*p)++;
            continue;
        }
        if (u->file && u->nseg == 0 && u->tab[*p] && buf.len == 2 && is_alpha(buf.data[0]) &&
            buf.data[1] == ':') {
            /* The url crate sees a first segment "C:" that a tab or newline ends as a
             * drive letter followed by '/': "file:C:<TAB>x" -> "file:///C:/x". */
            seg_push(u, buf.data, buf.len);
            buf.len = 0;
        }
        pct_put(&buf, c, SET_PATH);
        (*p)++;
    }
    int oom = buf.oom;
    ir_buf_free(&buf);
    if (u->file) {
        /* The url crate drops leading empty segments of a file path. */
        size_t drop = 0;
        while (u->nseg - drop > 1 && seg_len(u, drop) == 0)
            drop++;
        if (drop) {
            size_t off = u->seg[drop];
            if (off > 0) {
                memmove(u->path.data, u->path.data + off, u->path.len - off);
                u->path.len -= off;
            }
            for (size_t i = drop; i < u->nseg; i++)
                u->seg[i - drop] = u->seg[i] - off;
            u->nseg -= drop;
        }
    }
    return oom ? no_memory() : IROH_OK;
}

/* The path start state for a URL with a host. */
static int parse_path_start(url_rec *u, size_t *p)
{
    if (u->special) {
        if (*p < u->n && (u->in[*p] == '/' || u->in[*p] == '\\'))
            (*p)++;
        return parse_path(u, p);
    }
    if (*p >= u->n || u->in[*p] == '?' || u->in[*p] == '#')
        return IROH_OK;
    if (u->in[*p] == '/')
        (*p)++;
    return parse_path(u, p);
}

/* The query and fragment states. */
static void parse_query_fragment(url_rec *u, size_t p)
{
    if (p < u->n && u->in[p] == '?') {
        u->has_query = 1;
        for (p++; p < u->n && u->in[p] != '#'; p++)
            pct_put(&u->query, u->in[p], u->special ? SET_SPECIAL_QUERY : SET_QUERY);
    }
    if (p < u->n && u->in[p] == '#') {
        u->has_fragment = 1;
        for (p++; p < u->n; p++)
            pct_put(&u->frag, u->in[p], SET_FRAGMENT);
    }
}

static int is_authority_end(const url_rec *u, uint32_t c)
{
    return c == '/' || c == '?' || c == '#' || (u->special && c == '\\');
}

static int default_port(const url_rec *u)
{
    const char *s = (const char *)u->scheme.data;
    size_t n = u->scheme.len;
    if ((n == 4 && memcmp(s, "http", 4) == 0) || (n == 2 && memcmp(s, "ws", 2) == 0))
        return 80;
    if ((n == 5 && memcmp(s, "https", 5) == 0) || (n == 3 && memcmp(s, "wss", 3) == 0))
        return 443;
    if (n == 3 && memcmp(s, "ftp", 3) == 0)
        return 21;
    return -1;
}

/* The authority, host and port states, then the path. p is just after "//" (or, for
 * special schemes, after all slashes and backslashes). */
static int parse_authority(url_rec *u, size_t p)
{
    size_t end = p, at = SIZE_MAX;
    int r;
    for (; end < u->n && !is_authority_end(u, u->in[end]); end++)
        if (u->in[end] == '@')
            at = end;
    if (at != SIZE_MAX) {
        if (at == p && at + 1 < u->n && at + 1 == end)
            return fail("empty host");
        int pw = 0;
        for (size_t i = p; i < at; i++) {
            if (u->in[i] == ':' && !pw)
                pw = 1;
            else
                pct_put(pw ? &u->pass : &u->user, u->in[i], SET_USERINFO);
        }
        p = at + 1;
    }
    size_t h = p;
    int brackets = 0;
    for (; h < u->n; h++) {
        uint32_t c = u->in[h];
        if ((c == ':' && !brackets) || is_authority_end(u, c))
            break;
        if (c == '[')
            brackets = 1;
        else if (c == ']')
            brackets = 0;
    }
    if (u->special && h == p)
        return fail("empty host");
    if ((r = host_parse(u->in + p, h - p, !u->special, &u->host)) != IROH_OK)
        return r;
    u->has_host = 1;
    if (u->host.len == 0 && ((h < u->n && u->in[h] == ':') || u->user.len || u->pass.len))
        return fail("empty host");
    p = h;
    if (p < u->n && u->in[p] == ':') {
        uint32_t port = 0;
        int any = 0;
        for (p++; p < u->n; p++) {
            uint32_t c = u->in[p];
            if (is_digit(c)) {
                port = port * 10 + (c - '0');
                if (port > 65535)
                    return fail("invalid port number");
                any = 1;
            } else if (c == '/' || c == '\\' || c == '?' || c == '#') {
                break;
            } else {
                return fail("invalid port number");
            }
        }
        if (any && (long)port != default_port(u))
            u->port = (long)port;
    }
    if ((r = parse_path_start(u, &p)) != IROH_OK)
        return r;
    parse_query_fragment(u, p);
    return IROH_OK;
}

/* The file state and what follows it (there is no base URL). */
static int parse_file(url_rec *u, size_t p)
{
    const uint32_t *in = u->in;
    int r;
    u->has_host = 1; /* a file URL always has a host, maybe empty */
    if (p < u->n && (in[p] == '/' || in[p] == '\\')) {
        if (p + 1 < u->n && (in[p + 1] == '/' || in[p + 1] == '\\')) {
            /* file host state */
            size_t h = p += 2;
            while (h < u->n && in[h] != '/' && in[h] != '\\' && in[h] != '?' && in[h] != '#')
                h++;
            if (h - p == 2 && is_alpha(in[p]) && (in[p + 1] == ':' || in[p + 1] == '|')) {
                r = parse_path(u, &p); /* the "host" is a drive letter: it starts the path */
            } else if (h == p) {
                r = parse_path(u, &p);
            } else {
                if ((r = host_parse(in + p, h - p, 0, &u->host)) != IROH_OK)
                    return r;
                p = h;
                if (u->host.len == 9 && memcmp(u->host.data, "localhost", 9) == 0) {
                    u->host.len = 0;
                    r = parse_path(u, &p);
                } else {
                    r = parse_path_start(u, &p);
                }
            }
        } else {
            p++; /* file slash state, then the path */
            r = parse_path(u, &p);
        }
    } else {
        r = parse_path(u, &p);
    }
    if (r != IROH_OK)
        return r;
    parse_query_fragment(u, p);
    return IROH_OK;
}

static int parse_url(url_rec *u)
{
    const uint32_t *in = u->in;
    size_t n = u->n, k = 0, p;
    /* scheme start and scheme states */
    if (n == 0 || !is_alpha(in[0]))
        return fail("relative URL without a base");
    while (k < n && (is_alnum(in[k]) || in[k] == '+' || in[k] == '-' || in[k] == '.'))
        k++;
    if (k == n || in[k] != ':')
        return fail("relative URL without a base");
    for (size_t i = 0; i < k; i++)
        ir_buf_byte(&u->scheme, (uint8_t)ascii_lower(in[i]));
    if (u->scheme.oom)
        return no_memory();
    p = k + 1;
    static const char *const special[] = {"http", "https", "ws", "wss", "ftp", "file"};
    for (size_t i = 0; i < NELEM(special); i++)
        if (u->scheme.len == strlen(special[i]) &&
            memcmp(u->scheme.data, special[i], u->scheme.len) == 0)
            u->special = 1, u->file = i == 5;
    if (u->file)
        return parse_file(u, p);
    if (u->special) {
        /* special authority slashes and ignore slashes states */
        while (p < n && (in[p] == '/' || in[p] == '\\'))
            p++;
        return parse_authority(u, p);
    }
    if (p + 1 < n && in[p] == '/' && in[p + 1] == '/')
        return parse_authority(u, p + 2);
    if (p < n && in[p] == '/') {
        /* path state without a host */
        p++;
        int r = parse_path(u, &p);
        if (r != IROH_OK)
            return r;
        parse_query_fragment(u, p);
        return IROH_OK;
    }
    /* opaque path state */
    u->opaque = 1;
    for (; p < n && in[p] != '?' && in[p] != '#'; p++)
        pct_put(&u->opath, in[p], SET_C0);
    parse_query_fragment(u, p);
    return IROH_OK;
}

/* ---- the serializer and the entry points ------------------------------------------- */

static void serialize(const url_rec *u, ir_buf *o)
{
    ir_buf_append(o, u->scheme.data, u->scheme.len);
    ir_buf_byte(o, ':');
    if (u->has_host) {
        ir_buf_append(o, "//", 2);
        if (u->user.len || u->pass.len) {
            ir_buf_append(o, u->user.data, u->user.len);
            if (u->pass.len) {
                ir_buf_byte(o, ':');
                ir_buf_append(o, u->pass.data, u->pass.len);
            }
            ir_buf_byte(o, '@');
        }
        ir_buf_append(o, u->host.data, u->host.len);
        if (u->port >= 0) {
            char t[8];
            int len = 0;
            long v = u->port, div = 10000;
            while (div > 1 && v / div == 0)
                div /= 10;
            for (; div > 0; div /= 10)
                t[len++] = (char)('0' + v / div % 10);
            ir_buf_byte(o, ':');
            ir_buf_append(o, t, (size_t)len);
        }
    } else if (!u->opaque && u->nseg > 1 && seg_len(u, 0) == 0) {
        ir_buf_append(o, "/.", 2);
    }
    if (u->opaque) {
        ir_buf_append(o, u->opath.data, u->opath.len);
    } else {
        for (size_t i = 0; i < u->nseg; i++) {
            ir_buf_byte(o, '/');
            ir_buf_append(o, seg_data(u, i), seg_len(u, i));
        }
    }
    if (u->has_query) {
        ir_buf_byte(o, '?');
        ir_buf_append(o, u->query.data, u->query.len);
    }
    if (u->has_fragment) {
        ir_buf_byte(o, '#');
        ir_buf_append(o, u->frag.data, u->frag.len);
    }
    ir_buf_byte(o, 0);
}

/* One run of the parser and serializer (Rust's Url::parse then as_str). */
static int normalize_once(const char *in, size_t len, char **out)
{
    cpvec raw = {0}, cps = {0};
    uint8_t *tab = NULL;
    url_rec u;
    ir_buf o;
    int r;
    *out = NULL;
    memset(&u, 0, sizeof u);
    u.port = -1;
    ir_buf_init(&o);
    if (!in && len)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL URL");
    if (utf8_decode((const uint8_t *)in, len, &raw) != 0) {
        r = fail("URL is not valid UTF-8");
        goto done;
    }
    /* Strip leading and trailing C0 control or space, remove all ASCII tab or newline. */
    size_t a = 0, b = raw.len;
    int after_tab = 0;
    while (a < b && raw.v[a] <= 0x20)
        a++;
    while (b > a && raw.v[b - 1] <= 0x20)
        b--;
    tab = malloc(b - a + 1);
    if (raw.oom || !tab) {
        r = no_memory();
        goto done;
    }
    for (size_t i = a; i < b; i++) {
        if (raw.v[i] == '\t' || raw.v[i] == '\n' || raw.v[i] == '\r') {
            after_tab = 1;
            continue;
        }
        tab[cps.len] = (uint8_t)after_tab;
        after_tab = 0;
        cp_push(&cps, raw.v[i]);
    }
    tab[cps.len] = 0;
    if (cps.oom) {
        r = no_memory();
        goto done;
    }
    u.in = cps.v;
    u.tab = tab;
    u.n = cps.len;
    if ((r = parse_url(&u)) != IROH_OK)
        goto done;
    if (u.scheme.oom || u.user.oom || u.pass.oom || u.host.oom || u.opath.oom || u.path.oom ||
        u.seg_oom || u.query.oom || u.frag.oom) {
        r = no_memory();
        goto done;
    }
    serialize(&u, &o);
    if (o.oom) {
        r = no_memory();
        goto done;
    }
    *out = (char *)o.data;
    ir_buf_init(&o);
done:
    ir_buf_free(&o);
    ir_buf_free(&u.scheme);
    ir_buf_free(&u.user);
    ir_buf_free(&u.pass);
    ir_buf_free(&u.host);
    ir_buf_free(&u.opath);
    ir_buf_free(&u.path);
    ir_buf_free(&u.query);
    ir_buf_free(&u.frag);
    free(u.seg);
    cp_free(&raw);
    cp_free(&cps);
    free(tab);
    return r;
}

int ir_url_normalize(const char *in, size_t len, char **out)
{
    char *once;
    int r = normalize_once(in, len, &once);
    *out = NULL;
    if (r != IROH_OK)
        return r;
    r = normalize_once(once, strlen(once), out);
    free(once);
    return r;
}

int iroh_relay_url_normalize(const char *url, char *buf, size_t buflen)
{
    char *s;
    int r;
    if (!url || !buf)
        return ir_fail(IROH_ERR_INVALID_ARGUMENT, "NULL argument");
    if ((r = ir_url_normalize(url, strlen(url), &s)) != IROH_OK)
        return r;
    size_t n = strlen(s);
    if (n >= buflen) {
        free(s);
        return ir_fail(IROH_ERR_BUFFER_TOO_SMALL, "the URL needs %zu bytes", n + 1);
    }
    memcpy(buf, s, n + 1);
    free(s);
    return IROH_OK;
}
