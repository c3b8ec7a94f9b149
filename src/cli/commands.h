/*
 * commands.h — the subcommands of the shardlm binary. Each takes argv with
 * argv[0] = the subcommand name and returns the process exit status.
 */
#ifndef SL_CLI_COMMANDS_H
#define SL_CLI_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_gguf(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_loadgen(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_cluster(int argc, char **argv);

#endif
