package example.api;

import com.typesafe.config.Config;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import spark.jobserver.api.JobEnvironment;
import spark.jobserver.japi.JSessionJob;
import spark.jobserver.japi.SingleJavaValidationException;

/** A job written against spark-jobserver's Java API, as it was before Spark 4. */
public class WordCountJob extends JSessionJob<Map<String, Long>> {
    @Override
    public Map<String, Long> run(SparkSession spark, JobEnvironment runtime, Config data) {
        List<String> words = data.getStringList("input.strings");
        Map<String, Long> counts = new HashMap<>();
        for (Row row : spark.createDataset(words, Encoders.STRING()).groupBy("value").count().collectAsList()) {
            counts.put(row.getString(0), row.getLong(1));
        }
        return counts;
    }

    @Override
    public Config verify(SparkSession spark, JobEnvironment runtime, Config config) {
        if (!config.hasPath("input.strings")) {
            throw new SingleJavaValidationException("config input.strings not found");
        }
        return config;
    }
}
