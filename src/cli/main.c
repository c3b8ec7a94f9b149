/*
 * main.c — the shardlm binary: dispatch to a subcommand.
 */
#include "commands.h"

#include "shardlm.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} COMMANDS[] = {
    {"serve", cmd_serve, "serve a model over an OpenAI-compatible HTTP API"},
    {"run", cmd_run, "generate text from a prompt"},
    {"logits", cmd_logits, "print the logits of the last prompt position"},
    {"embed", cmd_embed, "print the embeddings of texts (pooled normed hidden states)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"gguf", cmd_gguf, "print the metadata and tensor table of a GGUF file"},
    {"mkmodel", cmd_mkmodel, "write a Llama-architecture GGUF with random weights"},
    {"template", cmd_template, "render a chat template"},
    {"bench", cmd_bench, "measure prompt, decode and batched throughput"},
    {"loadgen", cmd_loadgen, "benchmark a serving endpoint with concurrent streaming requests"},
    {"route", cmd_route, "the cluster front door: route the OpenAI API to engines"},
    {"cluster", cmd_cluster, "cluster up: start engines and a router on this machine"},
};

static void usage(FILE *f) {
    fprintf(f, "shardlm %s — distributed LLM inference\n\nusage: shardlm COMMAND [options]\n\ncommands:\n",
            SHARDLM_VERSION);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    fprintf(f, "\n'shardlm COMMAND --help' lists a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("shardlm %s\n", SHARDLM_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "shardlm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
