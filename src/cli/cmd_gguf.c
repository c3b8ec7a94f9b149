#include "commands.h"
#include <stdio.h>
int cmd_gguf(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "shardlm gguf: not built yet\n"); return 1; }
