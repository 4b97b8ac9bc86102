package example.api

import com.typesafe.config.Config
import org.apache.spark.sql.SparkSession
import org.scalactic._
import spark.jobserver.SparkSessionJob
import spark.jobserver.api.{JobEnvironment, SingleProblem, ValidationProblem}

import scala.jdk.CollectionConverters._
import scala.util.Try

/** A job written against spark-jobserver's Scala API (SparkSessionJob), as it was before Spark 4. */
object WordCountScalaJob extends SparkSessionJob {
  type JobData = Seq[String]
  type JobOutput = collection.Map[String, Long]

  override def runJob(sparkSession: SparkSession, runtime: JobEnvironment, data: JobData): JobOutput =
    sparkSession.sparkContext.parallelize(data).countByValue()

  override def validate(sparkSession: SparkSession, runtime: JobEnvironment, config: Config):
      JobData Or Every[ValidationProblem] =
    Try(config.getStringList("input.strings").asScala.toSeq)
      .map(words => Good(words))
      .getOrElse(Bad(One(SingleProblem("No input.strings param"))))
}
