/* Ed25519 keys as iroh uses them (iroh-base key.rs): point validity for EndpointIds and
 * ed25519-dalek's verify_strict rules, on top of nettle's Ed25519. */
#ifndef IR_BASE_KEY_H
#define IR_BASE_KEY_H

#include <stdint.h>

/* 1 if the 32 bytes decompress to a curve point (iroh's PublicKey::from_bytes rule). */
int ir_ed25519_point_valid(const uint8_t enc[32]);
/* 1 if the encoding decompresses to a point of small order (one of the 8 torsion points). */
int ir_ed25519_small_order(const uint8_t enc[32]);
/* 1 if the y coordinate in the encoding is below p. */
int ir_ed25519_canonical_y(const uint8_t enc[32]);

/* Parses iroh's key text (64 lowercase hex or 52 base32 characters) into 32 bytes, with
 * iroh's error messages. Does not check point validity. */
int ir_key_text_decode(const char *text, uint8_t out[32]);

#endif
