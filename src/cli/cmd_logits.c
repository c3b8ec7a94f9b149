#include "commands.h"
#include <stdio.h>
int cmd_logits(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "shardlm logits: not built yet\n"); return 1; }
