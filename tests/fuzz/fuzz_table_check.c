/*
 * libFuzzer over the header's helpers that read a table found by name
 * (kestrel_mps_check_api, kestrel_mps_require_api): a fake table of every
 * size and content, allocated exactly as large as its struct_size field
 * says (at least that field itself), so that AddressSanitizer reports any
 * read past what the table declares.
 *
 *   clang -g -fsanitize=fuzzer,address -Iinclude tests/fuzz/fuzz_table_check.c -o fuzz_table_check
 *   ./fuzz_table_check -max_total_time=20
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KESTREL_MPS_NO_CONSUMER_HELPER
#include "kestrel_mps_api.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint32_t declared, required;
  unsigned char* table;
  const char* why = NULL;
  if (size < 8) return 0;
  memcpy(&required, data, 4);
  memcpy(&declared, data + 4, 4);
  declared %= 1024;
  if (declared < 4) declared = 4; /* the size field itself is always read */
  table = (unsigned char*)malloc(declared);
  memset(table, 0, declared);
  memcpy(table, data + 4, size - 4 < declared ? size - 4 : declared);
  memcpy(table, &declared, 4); /* struct_size: exactly what was allocated */
  if (kestrel_mps_check_api(table, &why) != NULL && why == NULL) abort(); /* success leaves "" */
  (void)kestrel_mps_require_api(table, required, &why);
  if (why == NULL) abort(); /* every outcome leaves a message, "" on success */
  free(table);
  return 0;
}
