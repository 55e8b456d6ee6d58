"""rewardkit.pipelines"""
