"""rewardkit.judges"""
