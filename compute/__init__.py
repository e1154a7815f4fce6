"""The job kinds: data providers, backtest engine, optimize, discover, patterns, leaderboard."""
