/* URL parsing and serialization as iroh's RelayUrl does it: the WHATWG URL Standard's basic
 * URL parser without a base URL, with the behaviour of the Rust `url` crate (2.5.8) and its
 * `idna` crate (UTS #46, non-transitional) where they differ from the standard. */
#ifndef IR_BASE_URL_H
#define IR_BASE_URL_H

#include <stddef.h>

#include "base/util.h"

/* Parses `in` (len bytes, need not be NUL-terminated, may contain any bytes) as an absolute
 * URL and writes its serialization (Rust's `Url::as_str()`, the WHATWG "href") to a
 * malloc'd NUL-terminated string in *out, which the caller frees. Returns IROH_OK,
 * IROH_ERR_INVALID_ADDR with a one-line detail message, or IROH_ERR_NO_MEMORY. Input
 * that is not UTF-8 is rejected (a Rust string cannot hold it). The result is that of
 * parsing twice, as iroh does when a relay URL goes through a ticket (Rust's parser is not
 * idempotent on a few file: URLs); it is idempotent. */
int ir_url_normalize(const char *in, size_t len, char **out);

#endif
