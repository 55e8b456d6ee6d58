"""The `rewardkit` command. Each subcommand lives in its own module."""
